"""What every visitor of a store sees alike, kept in the process between requests:
the catalog's entries and tags, an API page's row, tiers, tags and OpenAPI
operations, and a tier version's price bands and meter prices in words.

Each entry belongs to one organization and, where the visitor's access matters,
one audience (the PUBLIC APIs only, or the RESTRICTED ones too): the key always
holds both, so nothing cached for one tenant or one kind of visitor is ever served
to another. Per-visitor parts of a page (their subscriptions, applications, what
they may do) are never cached.

Freshness: each organization has a catalog version, a random token in the shared
Django cache (so every web process sees it). An entry is used only while the
token it was computed under is current; any change to the organization's APIs,
tiers, tier versions, price bands, meters, meter prices, offers or tags replaces
the token (model signals and the catalog's `api_changed` / `tier_changed`,
connected in `store.receivers`), once at the change and again when its
transaction commits. A request reads the token before it reads the database, so
an entry computed from data a concurrent change is replacing is stored under the
old token and never used.

A request reads each organization's token once, at its first use of the cache,
and keeps it until it ends (`request_started` / `request_finished`, connected in
`store.receivers`): its later `cached()` calls cost no shared-cache read, and the
whole page is served from one version. A change the request makes itself drops
what it kept, so it sees its own change. Outside a request (tasks, shells) the
token is read at every call.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from django.core.cache import cache
from django.db import transaction

# Per process. A store's catalog is a few entries, plus up to three rendered
# fragments per API and audience (a catalog card, an API page's two parts, a few
# KB each): room for a few stores of a hundred APIs, a few MB at most.
MAX_ENTRIES = 2048
# Who sees a cached part: visitors of the PUBLIC APIs only, or of the RESTRICTED
# ones too (`audience()`).
PUBLIC, RESTRICTED = "public", "restricted"
AUDIENCES = (PUBLIC, RESTRICTED)
_VERSION_KEY = "store:catalog-version:{}"

log = logging.getLogger(__name__)

_entries: OrderedDict[tuple, tuple[str, Any]] = OrderedDict()
_lock = threading.Lock()
# The tokens the current request has read, per organization (None outside a
# request). A context variable: each request's context is its own, in a thread
# or in a task.
_request_versions: ContextVar[dict[int, str] | None] = ContextVar(
    "store_page_cache_versions", default=None
)


def audience(sees_restricted: bool) -> str:
    return RESTRICTED if sees_restricted else PUBLIC


def request_started(**kwargs) -> None:
    _request_versions.set({})


def request_finished(**kwargs) -> None:
    _request_versions.set(None)


def catalog_version(organization_id: int) -> str:
    """The organization's current catalog version: one shared-cache read, once per
    request; "" when the shared cache does not answer (the pages are then computed
    every time)."""
    kept = _request_versions.get()
    if kept is None:
        return _read_version(organization_id)
    version = kept.get(organization_id)
    if version is None:
        version = kept[organization_id] = _read_version(organization_id)
    return version


def _read_version(organization_id: int) -> str:
    key = _VERSION_KEY.format(organization_id)
    try:
        version = cache.get(key)
        if version is None:
            cache.add(key, secrets.token_hex(8), timeout=None)
            version = cache.get(key)
    except Exception:  # Redis down: slower pages, not broken ones
        log.warning("the shared cache does not answer: the store's pages go uncached")
        return ""
    return version or ""


def cached[T](organization_id: int, key: tuple, compute: Callable[[], T]) -> T:
    """`compute()` for the organization under `key`, from this process's copy while
    the organization's catalog version has not changed."""
    version = catalog_version(organization_id)
    full_key = (organization_id, *key)
    with _lock:
        hit = _entries.get(full_key)
        if hit is not None and hit[0] == version:
            _entries.move_to_end(full_key)
            return hit[1]
    value = compute()
    if version:  # no shared cache answering: compute every time
        with _lock:
            _entries[full_key] = (version, value)
            _entries.move_to_end(full_key)
            while len(_entries) > MAX_ENTRIES:
                _entries.popitem(last=False)
    return value


def catalog_changed(organization_id: int | None) -> None:
    """The organization's catalog changed: retire what every process cached for it,
    now and again when the current transaction commits."""
    if organization_id is None:
        return
    _bump(organization_id)
    transaction.on_commit(lambda: _bump(organization_id))


def _bump(organization_id: int) -> None:
    kept = _request_versions.get()
    if kept is not None:  # the request that changes it reads the new token
        kept.pop(organization_id, None)
    try:
        cache.set(
            _VERSION_KEY.format(organization_id), secrets.token_hex(8), timeout=None
        )
    except Exception:  # the change itself must not fail for the cache's sake
        log.exception(
            "the store's page cache could not be retired for organization %s",
            organization_id,
        )
