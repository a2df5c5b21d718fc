"""A stand-in webhook endpoint for the emulator's tests: verifies the signature through
the seam, as apimon's real endpoint does, and keeps what it received."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from apimon import stripe_client as sc
from apimon.payment_errors import StripeSignatureInvalid

received: list[object] = []


@csrf_exempt
def webhook(request: HttpRequest) -> HttpResponse:
    try:
        event = sc.construct_event(
            request.body, request.headers.get("Stripe-Signature", "")
        )
    except (StripeSignatureInvalid, ValueError):
        return HttpResponse(status=400)
    received.append(event)
    return HttpResponse(status=200)


urlpatterns = [path("billing/stripe/webhook/", webhook)]
