"""The API's route table: each handler names the stripe-python params TypedDict that
lists the parameters Stripe accepts for that call."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Handler = Callable[..., dict[str, Any]]


@dataclass(frozen=True)
class Route:
    method: str
    rule: str
    handler: Handler
    params: type | None


ROUTES: list[Route] = []


def route(
    method: str, rule: str, params: type | None = None
) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        ROUTES.append(Route(method, rule, handler, params))
        return handler

    return register
