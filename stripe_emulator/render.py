"""How stored objects are shown: most are their public fields, a few (invoices) are
assembled from related rows. Includable fields (`expand[]=payments` on an invoice)
are produced on request only, as Stripe does."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stripe_emulator.objects import public

if TYPE_CHECKING:
    from stripe_emulator.emulator import Emulator

Renderer = Callable[["Emulator", dict[str, Any]], dict[str, Any]]
Includer = Callable[["Emulator", dict[str, Any]], Any]

RENDERERS: dict[str, Renderer] = {}
INCLUDABLE: dict[tuple[str, str], Includer] = {}


def render(emulator: Emulator, obj: dict[str, Any]) -> dict[str, Any]:
    renderer = RENDERERS.get(obj.get("object", ""))
    return renderer(emulator, obj) if renderer else public(obj)
