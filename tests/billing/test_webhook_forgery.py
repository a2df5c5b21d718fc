"""Outside DEBUG the Stripe webhook secret has no public default. Before, a deployment
on the emulator that did not set STRIPE_WEBHOOK_SECRET verified webhooks with
`whsec_emulator_apimon`, which every checkout of apimon knows, so anyone could post
a forged `account.application.deauthorized` and disconnect another organization's
Stripe account. These run apimon's own settings with DEBUG=0 in a child process."""

from __future__ import annotations

import os
import tempfile

from tests.helpers import run_python

FORGE = """
import json, time, django
django.setup()
import stripe
from django.core.management import call_command
from django.test import Client
call_command("migrate", verbosity=0)
from apimon.models import User
from apimon.services import organization_create
from billing.models import StripeConnection

victim = organization_create(
    user=User.objects.create_user(email="owner@victim.test", password="x"),
    name="Victim",
)
connection = StripeConnection.objects.create(
    organization=victim, account_id="acct_1VictimAccount00", monetization_enabled=True
)
payload = json.dumps({
    "id": "evt_forged_1", "object": "event",
    "type": "account.application.deauthorized", "account": connection.account_id,
    "api_version": "2026-10-28.endive", "livemode": False,
    "created": int(time.time()), "data": {"object": {"id": "ca_x"}},
})

def post(secret):
    stamp = int(time.time())
    signature = stripe.WebhookSignature._compute_signature(f"{stamp}.{payload}", secret)
    return Client().post(
        "/billing/stripe/webhook/", data=payload, content_type="application/json",
        headers={"Stripe-Signature": f"t={stamp},v1={signature}"}, secure=True,
    ).status_code

forged = post("whsec_emulator_apimon")
connection.refresh_from_db()
print("forged", forged, connection.disconnected_at is None)
genuine = post(%(secret)r)
connection.refresh_from_db()
print("genuine", genuine, connection.disconnected_at is None)
"""

OPERATOR_SECRET = "whsec_operator_" + "s3cr3t" * 4
PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": "k3y-" + "x7Qp9" * 12,
    "ALLOWED_HOSTS": "testserver",
    "STRIPE_EMULATOR_URL": "http://127.0.0.1:12111",
    "STRIPE_EMULATOR_IN_PROCESS": "1",
    "STRIPE_EMULATOR_CONTROL_SECRET": "operator-chosen-" + "s3cr3t" * 4,
    "CELERY_TASK_ALWAYS_EAGER": "1",
    "SECURE_SSL_REDIRECT": "0",
    "DJANGO_SETTINGS_MODULE": "apimon.settings",
}


def run(**environ: str):
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO", "DEBUG", "STRIPE_", "SECURE_"))
        and k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "ALLOWED_HOSTS"}
    }
    with tempfile.TemporaryDirectory(prefix="apimon-forgery-") as var_dir:
        clean.update(PRODUCTION, APIMON_VAR_DIR=var_dir, **environ)
        return run_python(
            "-c", FORGE % {"secret": OPERATOR_SECRET}, env=clean, timeout=180
        )


def test_without_its_own_webhook_secret_production_does_not_start():
    result = run()
    assert result.returncode != 0
    assert "STRIPE_WEBHOOK_SECRET must be set when DEBUG is off" in result.stderr
    assert "forged" not in result.stdout


def test_a_deauthorization_signed_with_the_public_secret_disconnects_nothing():
    result = run(STRIPE_WEBHOOK_SECRET=OPERATOR_SECRET)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # The forgery is a 400 and the account stays connected …
    assert "forged 400 True" in lines
    # … while the same event signed with the operator's secret is Stripe speaking.
    assert "genuine 200 False" in lines
