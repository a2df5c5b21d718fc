"""The gateway's Redis side: key names and the Lua scripts of the hot path and of the
flush. docs/metering.md states the protocol and its guarantees; this module is it.

Key layout (prefix ``am:gw:``):

- ``api:<org>/<context>/<version>``  cached API (JSON), see gateway.entitlements
- ``ent:<key hash>:<org>/<context>/<version>``  cached entitlement of a key on an API
- ``idx:{key,sub,api,tier}:<id>``  sets of cache keys that depend on that row
- ``gen``  invalidation generation; a cache fill loses to an invalidation
- ``r:<sub>:<unit>:<window start>``  burst rate counter of one window
- ``q:<sub>:<unit>:<window start>[:<meter>]``  quota counter of one window (no
  meter: requests)
- ``live``  hash ``<sub>:<bucket start µs>[:<meter>]`` → units counted, not yet
  flushed (no meter: requests)
- ``batch:<id>``  a sealed copy of ``live`` on its way to PostgreSQL
- ``pending``  sorted set of sealed batch ids, scored in sealing order
- ``seq``  sealing order
- ``alerts``  subscriptions whose quota counter crossed 80 % or 100 %
- ``lastused``  hash key hash → last use (epoch seconds), for ApiKey.last_used_at
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from publisher.models import REQUESTS_METER

P = "am:gw:"
GEN = P + "gen"
LIVE = P + "live"
PENDING = P + "pending"
SEQ = P + "seq"
ALERTS = P + "alerts"
LAST_USED = P + "lastused"

# Add one answer's reported units of a meter: to the live hash, and to the meter's
# quota counter if it exists (a counter that expired or was never seeded is seeded
# from the database by the next ADMIT: an INCRBY that created it, without a TTL, is
# undone); list the subscription for the quota-alerts job when the counter crosses
# 80 % or 100 % of its quota.
_ADD_REPORTED = """
local function add_reported(live, alerts, counter, field, units, limit, sub)
  redis.call('HINCRBY', live, field, units)
  if counter == '' then return end
  local now_m = redis.call('INCRBY', counter, units)
  if now_m == units and redis.call('TTL', counter) == -1 then
    redis.call('DEL', counter)
    return
  end
  local before = now_m - units
  if limit > 0 and ((now_m * 5 >= limit * 4 and before * 5 < limit * 4)
                    or (now_m >= limit and before < limit)) then
    redis.call('SADD', alerts, sub)
  end
end
"""

# ---- admit ---------------------------------------------------------------------
# One round trip decides a request: are the cached API and entitlement still there
# (an invalidation deletes them), is the burst window full, is the quota used up, is
# any request-time meter's quota used up; if not, count the request in the rate
# window, the quota window and the live usage hash, and each meter's units (weighted
# operations) in its quota window and the live hash. A quota counter (requests' or a
# meter's) that crosses 80 % or 100 % lists the subscription in the alerts set.
#
# It also carries the units that answers of this gateway process reported since its
# last round trip (response-reported meters, see REPORT below): they are added first,
# whatever the request's fate, so the next call sees them in the quota counters.
#
# KEYS: api cache, entitlement cache, rate counter, quota counter, live hash,
#       alerts set, last-used hash, then one quota counter per meter, then one per
#       carried report ('' when none)
# ARGV: rate limit (0 = none), rate window ms, quota limit (0 = none), quota TTL s,
#       hard stop (1/0), usage field, seed (-1 = none), subscription id, key hash, now,
#       number of meters, then per meter: quota limit (0 = none), quota TTL s,
#       hard stop (1/0), usage field, units of this request, seed (-1 = none), then
#       the number of carried reports and per report: usage field, units, quota
#       limit (0 = none), subscription id
# Returns {code, used, rate window used / meter index}: code 0 admitted, 1 stale
#         cache, 2 rate limited, 3 quota used up, 4 quota counter needs seeding from
#         the database, 5 a meter's quota used up {5, used, meter index}, 6 a meter's
#         quota counter needs seeding {6, 0, meter index}. The counts include this
#         request when it is admitted.
ADMIT = (
    _ADD_REPORTED
    + """
local meters = tonumber(ARGV[11] or '0')
local ro = 12 + meters * 6
for j = 1, tonumber(ARGV[ro] or '0') do
  local o = ro + (j - 1) * 4
  add_reported(KEYS[5], KEYS[6], KEYS[7 + meters + j], ARGV[o + 1],
               tonumber(ARGV[o + 2]), tonumber(ARGV[o + 3]), ARGV[o + 4])
end
if redis.call('EXISTS', KEYS[1], KEYS[2]) < 2 then return {1, 0} end
local rate_limit = tonumber(ARGV[1])
if rate_limit > 0 then
  local used = tonumber(redis.call('GET', KEYS[3]) or '0')
  if used >= rate_limit then return {2, used} end
end
local quota_limit = tonumber(ARGV[3])
local q = 0
if quota_limit > 0 then
  local raw = redis.call('GET', KEYS[4])
  if not raw then
    local seed = tonumber(ARGV[7])
    if seed < 0 then return {4, 0} end
    redis.call('SET', KEYS[4], seed, 'EX', ARGV[4], 'NX')
    raw = redis.call('GET', KEYS[4])
  end
  q = tonumber(raw)
  if ARGV[5] == '1' and q >= quota_limit then return {3, q} end
end
for i = 1, meters do
  local o = 11 + (i - 1) * 6
  local limit = tonumber(ARGV[o + 1])
  if limit > 0 then
    local raw = redis.call('GET', KEYS[7 + i])
    if not raw then
      local seed = tonumber(ARGV[o + 6])
      if seed < 0 then return {6, 0, i} end
      redis.call('SET', KEYS[7 + i], seed, 'EX', ARGV[o + 2], 'NX')
      raw = redis.call('GET', KEYS[7 + i])
    end
    local used = tonumber(raw)
    if ARGV[o + 3] == '1' and used >= limit then return {5, used, i} end
  end
end
local r = 0
if rate_limit > 0 then
  r = redis.call('INCR', KEYS[3])
  if r == 1 then redis.call('PEXPIRE', KEYS[3], ARGV[2]) end
end
if quota_limit > 0 then
  local now_q = redis.call('INCR', KEYS[4])
  if now_q == 1 then redis.call('EXPIRE', KEYS[4], ARGV[4]) end
  if (now_q * 5 >= quota_limit * 4 and q * 5 < quota_limit * 4)
     or (now_q >= quota_limit and q < quota_limit) then
    redis.call('SADD', KEYS[6], ARGV[8])
  end
  q = now_q
end
for i = 1, meters do
  local o = 11 + (i - 1) * 6
  local units = tonumber(ARGV[o + 5])
  if units > 0 then
    redis.call('HINCRBY', KEYS[5], ARGV[o + 4], units)
    local limit = tonumber(ARGV[o + 1])
    if limit > 0 then
      local now_m = redis.call('INCRBY', KEYS[7 + i], units)
      local before = now_m - units
      if (now_m * 5 >= limit * 4 and before * 5 < limit * 4)
         or (now_m >= limit and before < limit) then
        redis.call('SADD', KEYS[6], ARGV[8])
      end
    end
  end
end
redis.call('HINCRBY', KEYS[5], ARGV[6], 1)
redis.call('HSET', KEYS[7], ARGV[9], ARGV[10])
return {0, q, r}
"""
)

# ---- release -------------------------------------------------------------------
# The backend's answer does not count (not 2xx/3xx, or the gateway answered 502/504):
# take back what ADMIT counted, in the same usage bucket. If a flush sealed the +1
# meanwhile, the -1 lands in a later batch, which the flush applies after it.
# KEYS: quota counter ('' allowed when no quota), live hash, then a quota counter
#       per meter ('' when none). ARGV: usage field, then per meter: its usage field
#       and the units ADMIT counted.
RELEASE = """
if KEYS[1] ~= '' and redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('DECR', KEYS[1])
end
redis.call('HINCRBY', KEYS[2], ARGV[1], -1)
for i = 3, #KEYS do
  local units = tonumber(ARGV[(i - 3) * 2 + 3])
  if units > 0 then
    if KEYS[i] ~= '' and redis.call('EXISTS', KEYS[i]) == 1 then
      redis.call('DECRBY', KEYS[i], units)
    end
    redis.call('HINCRBY', KEYS[2], ARGV[(i - 3) * 2 + 2], -units)
  end
end
return 1
"""

# ---- response-reported quantities ----------------------------------------------
# Counted answers reported units of meters (Apimon-Meter-<key> headers). A gateway
# process keeps them until its next round trip, the next ADMIT, which carries them;
# when no call comes within a few milliseconds they are sent alone, by this script,
# the reports of several answers at once.
# KEYS: live hash, alerts set, then a quota counter per report ('' when none).
# ARGV: per report: its usage field, the units reported, the meter's quota limit
#       (0 = none) and the subscription id.
REPORT = (
    _ADD_REPORTED
    + """
for i = 3, #KEYS do
  local o = (i - 3) * 4
  add_reported(KEYS[1], KEYS[2], KEYS[i], ARGV[o + 1], tonumber(ARGV[o + 2]),
               tonumber(ARGV[o + 3]), ARGV[o + 4])
end
return 1
"""
)

# ---- flush ---------------------------------------------------------------------
# Step 1 of the flush: move the live hash to a new batch, atomically.
# KEYS: live, pending, seq. ARGV: batch id (random, never reused), batch key.
SEAL = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local order = redis.call('INCR', KEYS[3])
redis.call('RENAME', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], order, ARGV[1])
return order
"""

# Last step: forget a batch that PostgreSQL holds. KEYS: batch key, pending. ARGV: id.
FORGET = """
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"""

# Take the last-used times (they are advisory: losing one to a crash is harmless).
# KEYS: last-used hash.
TAKE_LAST_USED = """
local all = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return all
"""

# Take a set's members and empty it. KEYS: the set.
TAKE_SET = """
local all = redis.call('SMEMBERS', KEYS[1])
redis.call('DEL', KEYS[1])
return all
"""

# ---- entitlement cache ---------------------------------------------------------
# Fill a cache entry unless an invalidation ran since the caller read `gen` (it may
# have read the database before the change committed).
# KEYS: gen, entry, index sets... ARGV: expected gen, value, TTL s
CACHE_PUT = """
local gen = redis.call('GET', KEYS[1]) or '0'
if gen ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
for i = 3, #KEYS do
  redis.call('SADD', KEYS[i], KEYS[2])
  redis.call('EXPIRE', KEYS[i], 86400)
end
return 1
"""

# Drop every cache entry listed in these index sets, and the sets.
# KEYS: gen, index sets...
INVALIDATE = """
redis.call('INCR', KEYS[1])
local dropped = 0
for i = 2, #KEYS do
  local members = redis.call('SMEMBERS', KEYS[i])
  for _, key in ipairs(members) do
    dropped = dropped + redis.call('DEL', key)
  end
  redis.call('DEL', KEYS[i])
end
return dropped
"""


def api_key(route: str) -> str:
    return f"{P}api:{route}"


def ent_key(key_hash: str, route: str) -> str:
    return f"{P}ent:{key_hash}:{route}"


def idx(kind: str, ident: object) -> str:
    return f"{P}idx:{kind}:{ident}"


def rate_key(sub_id: int, unit: str, start: int) -> str:
    return f"{P}r:{sub_id}:{unit}:{start}"


def quota_key(
    sub_id: int, unit: str, start: int, meter_key: str = REQUESTS_METER
) -> str:
    """A quota window's counter: requests, or another meter's units."""
    if meter_key == REQUESTS_METER:
        return f"{P}q:{sub_id}:{unit}:{start}"
    return f"{P}q:{sub_id}:{unit}:{start}:{meter_key}"


def batch_key(batch_id: str) -> str:
    return f"{P}batch:{batch_id}"


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_us(at: datetime) -> int:
    """Microseconds since the epoch, exactly (no float rounding)."""
    return (at - EPOCH) // timedelta(microseconds=1)


def from_epoch_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


HOUR_US = 3_600_000_000


def usage_anchor(subscription) -> datetime:
    """The time a subscription's usage hours are aligned to (its period anchor)."""
    return (
        subscription.started_at
        or subscription.current_period_start
        or subscription.created_at
    )


def hour_start_us(t_us: int, anchor_us: int) -> int:
    """Start of the subscription hour that `t_us` falls in, in µs. Hours are aligned
    to the subscription's anchor, so billing periods split on row boundaries."""
    return t_us - ((t_us - anchor_us) % HOUR_US)


def usage_field(sub_id: int, bucket_us: int, meter_key: str = REQUESTS_METER) -> str:
    """A live-hash field: ``<sub>:<bucket>`` for requests (as before meters
    existed, so counters in flight across an upgrade keep their meaning),
    ``<sub>:<bucket>:<meter>`` for another meter."""
    if meter_key == REQUESTS_METER:
        return f"{sub_id}:{bucket_us}"
    return f"{sub_id}:{bucket_us}:{meter_key}"


def parse_usage_field(field: bytes | str) -> tuple[int, int, str]:
    """(subscription id, bucket start µs, meter key) of a live-hash field."""
    if isinstance(field, bytes):
        field = field.decode()
    sub, bucket, *rest = field.split(":", 2)
    return int(sub), int(bucket), rest[0] if rest else REQUESTS_METER
