"""`expand[]`: replace an id with the object it names, along dotted paths
(`expand[]=lines.data.pricing.price_details.price`, `expand[]=data.customer` on lists),
at most four levels deep, as Stripe allows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stripe_emulator.errors import invalid
from stripe_emulator.ids import type_for_id
from stripe_emulator.render import INCLUDABLE, render

if TYPE_CHECKING:
    from stripe_emulator.emulator import Ctx

MAX_DEPTH = 4


def expand(ctx: Ctx, obj: dict[str, Any], paths: list[str]) -> dict[str, Any]:
    for path in paths:
        segments = path.split(".")
        depth = len([s for s in segments if s != "data"])
        if depth > MAX_DEPTH:
            raise invalid(
                f"You cannot expand more than {MAX_DEPTH} levels of a property. "
                "Property: "
                f"{path}",
                param="expand",
            )
        _expand(ctx, obj, segments, path)
    return obj


def _load(ctx: Ctx, object_id: str) -> dict[str, Any] | None:
    # Ids an object refers to are visible through it (a platform's fee names the
    # connected account's charge), so the lookup is by id alone.
    found = ctx.store.get(object_id)
    if found is None or found.get("object") == "oauth_token":
        return None
    return render(ctx.emulator, found)


def _expand(ctx: Ctx, obj: dict[str, Any], segments: list[str], path: str) -> None:
    head, rest = segments[0], segments[1:]
    if obj.get("object") == "list" and head == "data":
        for item in obj["data"]:
            if rest:
                _expand(ctx, item, rest, path)
        return
    includer = INCLUDABLE.get((obj.get("object", ""), head))
    if includer is not None and not isinstance(obj.get(head), dict):
        obj[head] = includer(ctx.emulator, obj)
    elif head not in obj:
        raise invalid(f"This property cannot be expanded ({head}).", param="expand")
    value = obj[head]
    if isinstance(value, str):
        if type_for_id(value) is None:
            raise invalid(f"This property cannot be expanded ({head}).", param="expand")
        loaded = _load(ctx, value)
        if loaded is None:
            return
        obj[head] = value = loaded
    if rest and isinstance(value, dict):
        _expand(ctx, value, rest, path)
