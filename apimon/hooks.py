"""How a lower layer asks a higher one a question without importing it.

Dependencies in apimon flow one way (docs/architecture.md): the catalog never
imports the store, the store never imports billing or the gateway. Where a lower
part must *tell* a higher one that something happened, it sends a Django signal it
owns (its `hooks.py`). Where it must *ask* something only a higher part knows (does
this organization take payments? how many requests has this subscription made?),
it declares a `Provider` there, and the higher part answers it from its
`AppConfig.ready()`:

    # store/hooks.py (the store asks)
    takes_payments = Provider[[Organization], bool]("takes_payments")

    # billing/apps.py (billing answers)
    store_hooks.takes_payments.provide(monetization_enabled)

A `Contributions` hook is the same for a page several higher parts add to (the
publisher dashboard's figures): each registers a function, the page calls them all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import ImproperlyConfigured


class Provider[**P, R]:
    """One question of a lower layer, answered by exactly one higher layer."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._answer: Callable[P, R] | None = None

    def provide(self, answer: Callable[P, R]) -> Callable[P, R]:
        """Answer the question with `answer` (from an `AppConfig.ready()`). Calling
        it again replaces the answer (ready() may run twice in tests)."""
        self._answer = answer
        return answer

    @property
    def provided(self) -> bool:
        return self._answer is not None

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        if self._answer is None:
            raise ImproperlyConfigured(
                f"Nothing answers the hook {self.name!r}: the app that provides it "
                "is missing from INSTALLED_APPS."
            )
        return self._answer(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<Provider {self.name}>"


class Contributions[**P]:
    """What several higher layers add to one thing of a lower layer: each
    registers a function returning a dict; `collect` merges their answers."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._contributors: dict[str, Callable[P, dict[str, Any]]] = {}

    def register(
        self, contributor: Callable[P, dict[str, Any]]
    ) -> Callable[P, dict[str, Any]]:
        key = f"{contributor.__module__}.{contributor.__qualname__}"
        self._contributors[key] = contributor  # registering twice keeps one
        return contributor

    def collect(self, *args: P.args, **kwargs: P.kwargs) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for contributor in self._contributors.values():
            merged.update(contributor(*args, **kwargs))
        return merged

    def __repr__(self) -> str:
        return f"<Contributions {self.name}>"
