"""The ground truth of a fault scenario, read from each side on its own:

- what the sample backend answered, per tag and status (its served counter);
- what apimon counted: `UsageRecord` rows, plus counts still in Redis (live and
  sealed batches not yet flushed);
- what apimon billed: its `Invoice` rows;
- what Stripe holds: the emulator's invoices and charges on the connected account,
  through its API.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import httpx
import redis

from gateway import meter

COUNTED = range(200, 400)  # what a tier counts unless it counts every request


def served(stack) -> dict[str, Counter]:
    """{tag: Counter(status → requests the backend answered)}."""
    raw = httpx.get(f"{stack.backend_url}/_served", timeout=10).json()
    return {tag: Counter({int(s): n for s, n in c.items()}) for tag, c in raw.items()}


def served_counted(stack, subscriptions: list[dict]) -> dict[int, int]:
    """{subscription id: requests the backend answered with a counted status}."""
    answered = served(stack)
    return {
        s["id"]: sum(n for st, n in answered.get(s["tag"], {}).items() if st in COUNTED)
        for s in subscriptions
    }


def usage(stack, *, before=None) -> dict[int, int]:
    """{subscription id: requests in UsageRecord} (in the hours that start before
    `before`, a datetime, when given)."""
    rows = stack.query(
        "SELECT subscription_id, SUM(count) FROM gateway_usagerecord"
        " WHERE %s IS NULL OR hour < %s GROUP BY 1",
        [before, before],
    )
    return {sub: int(total) for sub, total in rows}


def unflushed(stack) -> dict[int, int]:
    """{subscription id: requests counted in Redis and not yet in the database}
    (the live hash and every sealed batch still pending)."""
    client = redis.Redis.from_url(stack.redis_url, socket_timeout=5)
    try:
        totals: dict[int, int] = defaultdict(int)
        hashes = [meter.LIVE] + [
            meter.batch_key(b.decode()) for b in client.zrange(meter.PENDING, 0, -1)
        ]
        for key in hashes:
            for fld, value in client.hgetall(key).items():
                sub, _bucket, _meter = meter.parse_usage_field(fld)
                totals[sub] += int(value)
        return dict(totals)
    finally:
        client.close()


# The sum of every count not yet flushed (the live hash and the pending batches),
# read in one atomic step; with ARGV[1] == "flushall" Redis then loses everything in
# that same step, so the sum is exactly what the loss took.
_UNFLUSHED_TOTAL = """
local total = 0
local function add(key)
  local values = redis.call('HVALS', key)
  for _, v in ipairs(values) do total = total + tonumber(v) end
end
add(KEYS[1])
for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  add(KEYS[3] .. id)
end
if ARGV[1] == 'flushall' then redis.call('FLUSHALL') end
return total
"""


def unflushed_total(client: redis.Redis, *, then_flushall: bool = False) -> int:
    return int(
        client.eval(
            _UNFLUSHED_TOTAL, 3, meter.LIVE, meter.PENDING, meter.batch_key(""),
            "flushall" if then_flushall else "",
        )
    )  # fmt: skip


def invoices(stack, organization_id: int) -> list[dict[str, Any]]:
    rows = stack.query(
        "SELECT id, subscription_id, kind, status, period_start, total_minor,"
        " stripe_invoice_id, push_attempts, last_push_error"
        " FROM billing_invoice WHERE organization_id = %s ORDER BY id",
        [organization_id],
    )
    names = ["id", "subscription", "kind", "status", "period_start", "total_minor",
             "stripe_invoice_id", "push_attempts", "last_push_error"]  # fmt: skip
    return [dict(zip(names, row, strict=True)) for row in rows]


def _stripe_list(stack, account: str, path: str, **params: Any) -> list[dict]:
    items: list[dict] = []
    query: dict[str, Any] = {"limit": 100, **params}
    while True:
        answer = httpx.get(
            f"{stack.emulator_url}{path}",
            params=query,
            headers={
                "Authorization": "Bearer sk_test_emulator_platform",
                "Stripe-Account": account,
            },
            timeout=30,
        )
        answer.raise_for_status()
        page = answer.json()
        items += page["data"]
        if not page.get("has_more"):
            return items
        query["starting_after"] = page["data"][-1]["id"]


def stripe_invoices(stack, account: str) -> list[dict]:
    return _stripe_list(stack, account, "/v1/invoices")


def stripe_charges(stack, account: str) -> list[dict]:
    return _stripe_list(stack, account, "/v1/charges")


def billing_check(stack, world: dict) -> dict[str, Any]:
    """Exactly once, end to end: for each of the world's invoices one Stripe invoice
    (by `apimon_invoice_id`) with the same total, and one succeeded charge for each
    paid Stripe invoice with something to pay. Returns the figures and the list of
    what is wrong (empty when all is well)."""
    local = invoices(stack, world["organization_id"])
    remote = stripe_invoices(stack, world["account"])
    charges = [c for c in stripe_charges(stack, world["account"]) if c["paid"]]
    problems = []
    per_period = Counter(
        (i["subscription"], i["period_start"], i["kind"]) for i in local
    )
    problems += [f"{n} invoices for {key}" for key, n in per_period.items() if n > 1]
    by_local = defaultdict(list)
    for inv in remote:
        by_local[(inv.get("metadata") or {}).get("apimon_invoice_id")].append(inv)
    for inv in local:
        mine = by_local.get(str(inv["id"]), [])
        if len(mine) != 1:
            problems.append(f"invoice {inv['id']}: {len(mine)} Stripe invoices")
        elif mine[0]["total"] != inv["total_minor"]:
            problems.append(
                f"invoice {inv['id']}: total {inv['total_minor']} here,"
                f" {mine[0]['total']} on Stripe"
            )
    strays = set(by_local) - {str(i["id"]) for i in local}
    problems += [f"Stripe invoice for unknown apimon invoice {s}" for s in strays]
    paid = [i for i in remote if i["status"] == "paid" and i["amount_paid"] > 0]
    if len(charges) != len(paid):
        problems.append(f"{len(charges)} charges for {len(paid)} paid invoices")
    charged = sum(c["amount"] for c in charges)
    if charged != sum(i["amount_paid"] for i in paid):
        problems.append(
            f"charged {charged}, invoices paid {sum(i['amount_paid'] for i in paid)}"
        )
    return {
        "invoices": len(local),
        "invoice_statuses": dict(Counter(i["status"] for i in local)),
        "stripe_invoices": len(remote),
        "charges": len(charges),
        "charged_minor": charged,
        "billed_minor": sum(i["total_minor"] for i in local),
        "problems": problems,
    }
