"""Errors in Stripe's JSON shape: {"error": {"type", "code", "message", "param"}}."""

from __future__ import annotations

from typing import Any

DOC_URL = "https://stripe.com/docs/error-codes/"


class StripeError(Exception):
    """An API error the emulator answers with, exactly as Stripe would shape it.

    `persist=True` keeps the request's writes although it fails: a declined charge
    still records the attempt, the failed charge and its events, as Stripe does.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        persist: bool = False,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.persist = persist
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "type": self.type}
        if self.code:
            error["code"] = self.code
            error["doc_url"] = DOC_URL + self.code.replace("_", "-")
        if self.param is not None:
            error["param"] = self.param
        error.update(self.extra)
        return {"error": error}


class OAuthError(Exception):
    """Connect OAuth errors have their own flat shape: {"error": "invalid_grant"}."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


def invalid(
    message: str, *, param: str | None = None, code: str | None = None
) -> StripeError:
    return StripeError(400, message, param=param, code=code)


def missing_param(param: str) -> StripeError:
    return StripeError(
        400, f"Missing required param: {param}.", param=param, code="parameter_missing"
    )


def no_such(object_label: str, object_id: str, *, param: str = "id") -> StripeError:
    return StripeError(
        404,
        f"No such {object_label}: '{object_id}'",
        param=param,
        code="resource_missing",
    )


def exclusive(*params: str) -> StripeError:
    return StripeError(
        400,
        "You may only specify one of these parameters: " + ", ".join(params) + ".",
        param=params[-1],
        code="parameters_exclusive",
    )
