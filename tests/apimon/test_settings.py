"""Settings read the environment strictly; these run Django in a child process with a
controlled environment, as a deployment would."""

import os
import socketserver
import subprocess
import tempfile
import threading
from decimal import Decimal

import pytest
from django.core.exceptions import ImproperlyConfigured

from apimon import env
from tests.helpers import run_python

STRONG_KEY = "k3y-" + "x7Qp9" * 12
# Variables a test sets itself, removed from the environment the suite runs in.
PRODUCTION = ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "ALLOWED_HOSTS")
STRIPE = (
    "STRIPE_SECRET_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "STRIPE_CONNECT_CLIENT_ID",
    "STRIPE_PUBLISHABLE_KEY",
    "STRIPE_EMULATOR_URL",
    "STRIPE_EMULATOR_CONTROL_SECRET",
    "MFA_REQUIRED_FOR_STAFF",
    "ALLAUTH_TRUSTED_PROXY_COUNT",
)
CHECKED = (
    "PLATFORM_CURRENCY",
    "PLATFORM_DEFAULT_COMMISSION_PERCENT",
    "GATEWAY_BACKEND_TIMEOUT",
    "BILLING_USAGE_SETTLE_SECONDS",
    "LOG_LEVEL",
    "EMAIL_HOST",
    "EMAIL_PORT",
    "SITE_URL",
    "SAMPLE_API_URL",
    "STATIC_ROOT",
    "BACKEND_PRIVATE_NETWORKS",
    "BACKEND_ALLOWED_NETWORKS",
    "GATEWAY_HOST",
    "RATE_LIMIT_INVITATIONS",
    "RATE_LIMIT_ORGANIZATIONS",
)
# A production environment on the emulator (DEBUG=0 needs the explicit opt-in).
CONTROL_SECRET = "operator-chosen-" + "s3cr3t" * 4
ON_THE_EMULATOR = {
    "STRIPE_EMULATOR_URL": "http://127.0.0.1:12111",
    "STRIPE_EMULATOR_CONTROL_SECRET": CONTROL_SECRET,
    "STRIPE_WEBHOOK_SECRET": "whsec_operator_" + "s3cr3t" * 4,
}


def run_django(code: str, **environ: str) -> subprocess.CompletedProcess:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("DJANGO", "DEBUG"))
    }
    for name in (*PRODUCTION, *STRIPE, *CHECKED):
        clean.pop(name, None)
    clean.update(environ, DJANGO_SETTINGS_MODULE="apimon.settings")
    with tempfile.TemporaryDirectory(prefix="apimon-boot-") as var_dir:
        # Its SQLite file and cache in a directory of its own, not the checkout's var/.
        clean.setdefault("APIMON_VAR_DIR", var_dir)
        return run_python("-c", f"import django; django.setup(); {code}", env=clean)


def test_debug_off_requires_a_secret_key():
    result = run_django("", DEBUG="0", ALLOWED_HOSTS="apimon.example.com")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_debug_off_requires_allowed_hosts():
    result = run_django("", DEBUG="0", SECRET_KEY=STRONG_KEY)
    assert "ALLOWED_HOSTS must be set" in result.stderr


def test_a_bad_boolean_names_the_variable():
    result = run_django("", DEBUG="maybe")
    assert "DEBUG='maybe' is not a boolean" in result.stderr


def test_a_bad_redis_url_names_the_variable():
    result = run_django("", REDIS_URL="http://nope")
    assert "REDIS_URL='http://nope' must start with redis://" in result.stderr


def test_secrets_can_come_from_files(tmp_path):
    secret = tmp_path / "key"
    secret.write_text(STRONG_KEY + "\n")
    result = run_django(
        "from django.conf import settings; print(settings.SECRET_KEY)",
        DEBUG="0",
        SECRET_KEY_FILE=str(secret),
        ALLOWED_HOSTS="a.example.com",
        **ON_THE_EMULATOR,
    )
    assert result.stdout.strip() == STRONG_KEY, result.stderr


def test_an_unreadable_secret_file_names_the_variable(tmp_path):
    result = run_django("", DEBUG="0", SECRET_KEY_FILE=str(tmp_path / "missing"))
    assert "SECRET_KEY_FILE=" in result.stderr and "cannot be read" in result.stderr


def test_the_defaults_need_nothing_installed(tmp_path):
    result = run_django(
        "from django.conf import settings as s; "
        "print(s.DATABASES['default']['ENGINE'], s.CELERY_BROKER_URL, s.STRIPE_EMULATOR, "
        "s.CACHES['default']['BACKEND'].rsplit('.', 1)[1], s.CACHES['default']['LOCATION'])",
        APIMON_VAR_DIR=str(tmp_path),
    )
    # The cache is in files that the web, worker and beat processes share.
    assert result.stdout.split() == [
        "django.db.backends.sqlite3",
        "filesystem://localhost/",
        "True",
        "FileBasedCache",
        str(tmp_path / "cache"),
    ], result.stderr


def test_database_and_redis_urls_switch_to_the_real_services():
    result = run_django(
        "from django.conf import settings as s; "
        "print(s.DATABASES['default']['ENGINE'], s.DATABASES['default']['NAME'], "
        "s.CELERY_BROKER_URL, s.CACHES['default']['BACKEND'].rsplit('.', 1)[1])",
        DATABASE_URL="postgres://u@db.example:5432/apimon",
        REDIS_URL="redis://r:6379/2",
    )
    assert result.stdout.split() == [
        "django.db.backends.postgresql",
        "apimon",
        "redis://r:6379/2",
        "RedisCache",
    ], result.stderr


def test_check_deploy_reports_nothing_with_production_settings(tmp_path):
    clean = dict(
        {k: v for k, v in os.environ.items() if not k.startswith("DJANGO")},
        APIMON_VAR_DIR=str(tmp_path),
        DEBUG="0",
        SECRET_KEY=STRONG_KEY,
        ALLOWED_HOSTS="a.example.com",
        DJANGO_SETTINGS_MODULE="apimon.settings",
        **ON_THE_EMULATOR,
    )
    result = run_python(
        "manage.py", "check", "--deploy", "--fail-level", "WARNING", env=clean
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


@pytest.mark.parametrize(
    ("reader", "raw", "message"),
    [
        (lambda: env.env_int("APIMON_T", 1), "ten", "APIMON_T='ten' is not an integer"),
        (
            lambda: env.env_int("APIMON_T", 1, minimum=2),
            "1",
            "APIMON_T=1 must be at least 2",
        ),
        (lambda: env.env_decimal("APIMON_T", Decimal(0)), "1,5", "not a decimal"),
        (lambda: env.env_choice("APIMON_T", "a", {"a", "b"}), "c", "not one of: a, b"),
        (lambda: env.env_float_seconds("APIMON_T", 1.0), "-3", "must be a positive"),
    ],
)
def test_each_reader_rejects_a_bad_value_naming_the_variable(
    monkeypatch, reader, raw, message
):
    monkeypatch.setenv("APIMON_T", raw)
    with pytest.raises(ImproperlyConfigured, match=message):
        reader()


def test_rates_are_read_as_allauth_takes_them_and_described(monkeypatch):
    monkeypatch.setenv("APIMON_T", " 5/10m ")
    assert env.env_rate("APIMON_T", "1/h") == "5/10m"
    assert env.describe_rate("5/10m") == "5 per 10 minutes"
    assert env.describe_rate("30/h") == "30 per hour"
    monkeypatch.setenv("APIMON_T", "OFF")
    assert env.env_rate("APIMON_T", "1/h") == ""
    monkeypatch.setenv("APIMON_T", "3/w")
    with pytest.raises(ImproperlyConfigured, match="APIMON_T='3/w' is not a rate"):
        env.env_rate("APIMON_T", "1/h")


def test_readers_parse_good_values(monkeypatch):
    monkeypatch.setenv("APIMON_T", " a, b ,,c ")
    assert env.env_list("APIMON_T", []) == ["a", "b", "c"]
    monkeypatch.setenv("APIMON_T", "Yes")
    assert env.env_bool("APIMON_T", False) is True
    monkeypatch.setenv("APIMON_T", "12.50")
    assert env.env_decimal("APIMON_T", Decimal(0)) == Decimal("12.50")


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"PLATFORM_CURRENCY": "xyz"}, "PLATFORM_CURRENCY='xyz' is not an ISO 4217"),
        (
            {"PLATFORM_DEFAULT_COMMISSION_PERCENT": "NaN"},
            "PLATFORM_DEFAULT_COMMISSION_PERCENT='NaN' is not a finite decimal",
        ),
        (
            {"PLATFORM_DEFAULT_COMMISSION_PERCENT": "150"},
            "PLATFORM_DEFAULT_COMMISSION_PERCENT='150' must be at most 100",
        ),
        (
            {"PLATFORM_DEFAULT_COMMISSION_PERCENT": "-1"},
            "PLATFORM_DEFAULT_COMMISSION_PERCENT='-1' must be at least 0",
        ),
        (
            {"PLATFORM_DEFAULT_COMMISSION_PERCENT": "12.345"},
            "PLATFORM_DEFAULT_COMMISSION_PERCENT=12.345 has more than 2 decimal places",
        ),
        (
            {"GATEWAY_BACKEND_TIMEOUT": "nan"},
            "GATEWAY_BACKEND_TIMEOUT='nan' is not a finite number of seconds",
        ),
        (
            {"BILLING_USAGE_SETTLE_SECONDS": "inf"},
            "BILLING_USAGE_SETTLE_SECONDS='inf' is not a finite number of seconds",
        ),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL='LOUD' is not one of: CRITICAL, DEBUG"),
        (
            {"EMAIL_HOST": "smtp.example.com", "EMAIL_PORT": "99999"},
            "EMAIL_PORT=99999 must be at most 65535",
        ),
        (
            {"EMAIL_HOST": "smtp.example.com", "EMAIL_PORT": "0"},
            "EMAIL_PORT=0 must be at least 1",
        ),
        ({"SITE_URL": "notaurl"}, "SITE_URL='notaurl' is not a URL starting with"),
        ({"SITE_URL": "https://a.example:99999"}, "SITE_URL='https://a.example:99999'"),
        (
            {"STRIPE_EMULATOR_URL": "ftp://x"},
            "STRIPE_EMULATOR_URL='ftp://x' is not a URL starting with http://",
        ),
        (
            {"SAMPLE_API_URL": "localhost:8100"},
            "SAMPLE_API_URL='localhost:8100' is not a URL",
        ),
        ({"STATIC_ROOT": " "}, "STATIC_ROOT must not be empty"),
        (
            {"BACKEND_PRIVATE_NETWORKS": "sometimes"},
            "BACKEND_PRIVATE_NETWORKS='sometimes' is not one of: allow, deny",
        ),
        (
            {"BACKEND_ALLOWED_NETWORKS": "10.0.0.0/8, 10.1.0.0/33"},
            "BACKEND_ALLOWED_NETWORKS: '10.1.0.0/33' is not an IP network in CIDR",
        ),
        (
            {"BACKEND_ALLOWED_NETWORKS": "intranet"},
            "BACKEND_ALLOWED_NETWORKS: 'intranet' is not an IP network in CIDR",
        ),
        (
            {"BACKEND_ALLOWED_NETWORKS": "10.0.0.1/8"},
            "BACKEND_ALLOWED_NETWORKS: '10.0.0.1/8' is not an IP network",
        ),
        (
            {"GATEWAY_HOST": "https://gw.example.com/"},
            "GATEWAY_HOST='https://gw.example.com/' is not a host name",
        ),
        ({"GATEWAY_HOST": "gw.example.com:8443"}, "is not a host name"),
        (
            {
                "GATEWAY_HOST": "apimon.example.com",
                "SITE_URL": "https://apimon.example.com",
            },
            "GATEWAY_HOST='apimon.example.com' is SITE_URL's host",
        ),
        (
            {"RATE_LIMIT_INVITATIONS": "20 per hour"},
            "RATE_LIMIT_INVITATIONS='20 per hour' is not a rate like 20/h",
        ),
        (
            {"RATE_LIMIT_ORGANIZATIONS": "0/d"},
            "RATE_LIMIT_ORGANIZATIONS='0/d' is not a rate",
        ),
    ],
    ids=lambda value: "-".join(value.values()) if isinstance(value, dict) else "",
)
def test_a_bad_value_stops_start_up_naming_the_variable(environ, message):
    result = run_django("", **environ)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr, result.stderr


def test_good_values_of_the_checked_variables_are_read():
    result = run_django(
        "from django.conf import settings as s; "
        "print(s.PLATFORM_CURRENCY, s.PLATFORM_DEFAULT_COMMISSION_PERCENT, "
        "s.GATEWAY_BACKEND_TIMEOUT, s.LOGGING['root']['level'], "
        "s.MAILERS['default']['OPTIONS']['port'], s.SITE_URL, s.SAMPLE_API_URL)",
        PLATFORM_CURRENCY="EUR",
        PLATFORM_DEFAULT_COMMISSION_PERCENT="12.5",
        GATEWAY_BACKEND_TIMEOUT="2.5",
        LOG_LEVEL="warning",
        EMAIL_HOST="smtp.example.com",
        EMAIL_PORT="465",
        SITE_URL="https://apimon.example.com/",
        SAMPLE_API_URL="http://sample:8100",
    )
    assert result.stdout.split() == [
        "eur",
        "12.5",
        "2.5",
        "WARNING",
        "465",
        "https://apimon.example.com",
        "http://sample:8100",
    ], result.stderr


def egress_settings(**environ) -> list[str]:
    result = run_django(
        "from django.conf import settings as s; "
        "print(s.BACKEND_PRIVATE_NETWORKS, ','.join(s.BACKEND_ALLOWED_NETWORKS) or '-',"
        " s.GATEWAY_HOST, s.GATEWAY_URL)",
        **environ,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_private_networks_are_denied_by_default_in_production_only():
    assert egress_settings()[:2] == ["allow", "-"]
    production = {**PRODUCTION_ENV, **ON_THE_EMULATOR}
    assert egress_settings(**production)[:2] == ["deny", "-"]
    assert egress_settings(**production, BACKEND_PRIVATE_NETWORKS="Allow")[0] == (
        "allow"
    )
    assert egress_settings(BACKEND_PRIVATE_NETWORKS="deny")[0] == "deny"


def test_allowed_networks_are_read_as_a_cidr_list():
    values = egress_settings(
        BACKEND_ALLOWED_NETWORKS=" 10.8.0.0/16, fd12:3456::/48 ,192.0.2.7"
    )
    assert values[1] == "10.8.0.0/16,fd12:3456::/48,192.0.2.7/32"


def test_the_gateway_host_and_the_gateway_url():
    assert egress_settings()[2:] == ["None", "http://127.0.0.1:8000"]
    values = egress_settings(
        GATEWAY_HOST="GW.Example.com.", SITE_URL="https://apimon.example.com"
    )
    assert values[2:] == ["gw.example.com", "https://gw.example.com"]
    values = egress_settings(GATEWAY_HOST="127.0.0.2", SITE_URL="http://127.0.0.1:8000")
    assert values[2:] == ["127.0.0.2", "http://127.0.0.2:8000"]
    assert egress_settings(GATEWAY_HOST="")[2] == "None"


def test_production_with_a_gateway_host_starts_with_only_the_pages_in_allowed_hosts():
    """The gateway does not go through Django's host validation: ALLOWED_HOSTS lists
    the pages' host, and the gateway's host needs no entry there."""
    values = egress_settings(
        **PRODUCTION_ENV,
        **ON_THE_EMULATOR,
        SITE_URL="https://apimon.example.com",
        GATEWAY_HOST="gw.apimon-gateway.example",
    )
    assert values == [
        "deny",
        "-",
        "gw.apimon-gateway.example",
        "https://gw.apimon-gateway.example",
    ]


# --- Stripe in production ------------------------------------------------------------

REAL_STRIPE = {
    "STRIPE_SECRET_KEY": "sk_live_" + "a1" * 12,
    "STRIPE_WEBHOOK_SECRET": "whsec_" + "b2" * 12,
    "STRIPE_CONNECT_CLIENT_ID": "ca_" + "c3" * 12,
}
PRODUCTION_ENV = {
    "DEBUG": "0",
    "SECRET_KEY": STRONG_KEY,
    "ALLOWED_HOSTS": "apimon.example.com",
}


@pytest.mark.parametrize(
    "missing", ["STRIPE_WEBHOOK_SECRET", "STRIPE_CONNECT_CLIENT_ID"]
)
@pytest.mark.parametrize("debug", ["0", "1"])
def test_real_stripe_requires_the_webhook_secret_and_the_connect_client_id(
    missing, debug
):
    environ = {k: v for k, v in REAL_STRIPE.items() if k != missing}
    result = run_django("", **{**PRODUCTION_ENV, "DEBUG": debug}, **environ)
    assert result.returncode != 0
    assert f"{missing} must be set when STRIPE_SECRET_KEY is set" in result.stderr


def test_real_stripe_secrets_may_come_from_files(tmp_path):
    environ = dict(REAL_STRIPE)
    for name in ("STRIPE_WEBHOOK_SECRET", "STRIPE_CONNECT_CLIENT_ID"):
        path = tmp_path / name
        path.write_text(environ.pop(name) + "\n")
        environ[f"{name}_FILE"] = str(path)
    result = run_django(
        "from django.conf import settings as s; "
        "print(s.STRIPE_EMULATOR, s.STRIPE_WEBHOOK_SECRET, s.STRIPE_CONNECT_CLIENT_ID)",
        **PRODUCTION_ENV,
        **environ,
    )
    assert result.stdout.split() == [
        "False",
        REAL_STRIPE["STRIPE_WEBHOOK_SECRET"],
        REAL_STRIPE["STRIPE_CONNECT_CLIENT_ID"],
    ], result.stderr


def test_a_stripe_secret_key_that_is_not_one_names_the_variable():
    result = run_django(
        "", **PRODUCTION_ENV, **{**REAL_STRIPE, "STRIPE_SECRET_KEY": ""}
    )
    assert "STRIPE_SECRET_KEY must be a Stripe secret key" in result.stderr


def test_production_without_a_stripe_key_refuses_to_start_on_the_emulator():
    result = run_django("", **PRODUCTION_ENV)
    assert result.returncode != 0
    assert "STRIPE_SECRET_KEY must be set when DEBUG is off" in result.stderr
    assert "STRIPE_EMULATOR_URL" in result.stderr


def test_production_runs_on_the_emulator_when_asked_to():
    result = run_django(
        "from django.conf import settings as s; "
        "print(s.STRIPE_EMULATOR, s.STRIPE_EMULATOR_URL, s.STRIPE_SECRET_KEY)",
        **PRODUCTION_ENV,
        **{**ON_THE_EMULATOR, "STRIPE_EMULATOR_URL": "http://stripe-emulator:12111/"},
    )
    # The closed emulator takes only the platform key made of the control secret.
    assert result.stdout.split() == [
        "True",
        "http://stripe-emulator:12111",
        f"sk_test_{CONTROL_SECRET}",
    ], result.stderr


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"STRIPE_WEBHOOK_SECRET": None},
            "STRIPE_WEBHOOK_SECRET must be set when DEBUG is off",
        ),
        (
            # The development default: every checkout of apimon knows it.
            {"STRIPE_WEBHOOK_SECRET": "whsec_emulator_apimon"},
            "not the public default 'whsec_emulator_apimon'",
        ),
        (
            {"STRIPE_EMULATOR_CONTROL_SECRET": None},
            "STRIPE_EMULATOR_CONTROL_SECRET must be set when DEBUG is off",
        ),
        (
            {"STRIPE_EMULATOR_CONTROL_SECRET": "short"},
            "STRIPE_EMULATOR_CONTROL_SECRET must be at least 24 characters",
        ),
        (
            {"STRIPE_EMULATOR_CONTROL_SECRET": "x" * 30 + " y"},
            "STRIPE_EMULATOR_CONTROL_SECRET must be at least 24 characters",
        ),
    ],
    ids=["no-webhook-secret", "public-webhook-secret", "no-control", "short", "space"],
)
def test_production_on_the_emulator_needs_its_own_secrets(environ, message):
    chosen = {**ON_THE_EMULATOR, **environ}
    result = run_django(
        "", **PRODUCTION_ENV, **{k: v for k, v in chosen.items() if v is not None}
    )
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_development_may_close_the_emulator_too():
    result = run_django(
        "from django.conf import settings as s; "
        "print(s.STRIPE_SECRET_KEY, s.STRIPE_WEBHOOK_SECRET)",
        STRIPE_EMULATOR_CONTROL_SECRET=CONTROL_SECRET,
    )
    assert result.stdout.split() == [
        f"sk_test_{CONTROL_SECRET}",
        "whsec_emulator_apimon",
    ], result.stderr


@pytest.mark.parametrize(
    ("environ", "required"),
    [
        ({"DEBUG": "1"}, False),
        ({**PRODUCTION_ENV, **ON_THE_EMULATOR}, True),
        ({"DEBUG": "1", "MFA_REQUIRED_FOR_STAFF": "yes"}, True),
        ({**PRODUCTION_ENV, **ON_THE_EMULATOR, "MFA_REQUIRED_FOR_STAFF": "0"}, False),
    ],
    ids=["debug", "production", "debug-asked", "production-relaxed"],
)
def test_mfa_is_required_for_staff_outside_debug_unless_relaxed(environ, required):
    result = run_django(
        "from django.conf import settings as s; print(s.MFA_REQUIRED_FOR_STAFF)",
        **environ,
    )
    assert result.stdout.split() == [str(required)], result.stderr


def test_the_trusted_proxy_count_is_read_strictly():
    read = run_django(
        "from django.conf import settings as s; print(s.ALLAUTH_TRUSTED_PROXY_COUNT)",
        ALLAUTH_TRUSTED_PROXY_COUNT="1",
    )
    assert read.stdout.split() == ["1"], read.stderr
    refused = run_django("", ALLAUTH_TRUSTED_PROXY_COUNT="-1")
    assert "ALLAUTH_TRUSTED_PROXY_COUNT=-1 must be at least 0" in refused.stderr


def test_a_bad_mfa_required_for_staff_names_the_variable():
    result = run_django("", MFA_REQUIRED_FOR_STAFF="sometimes")
    assert "MFA_REQUIRED_FOR_STAFF='sometimes' is not a boolean" in result.stderr


def test_development_runs_on_the_emulator_with_nothing_set():
    # `make run`: DEBUG on by default, no Stripe variables at all.
    result = run_django(
        "from django.conf import settings as s; "
        "print(s.DEBUG, s.STRIPE_EMULATOR, s.STRIPE_EMULATOR_URL)"
    )
    assert result.stdout.split() == ["True", "True", "http://127.0.0.1:12111"], (
        result.stderr
    )


# --- The readers --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reader", "raw", "message"),
    [
        (lambda: env.env_decimal("APIMON_T", Decimal(0)), "NaN", "not a finite"),
        (lambda: env.env_decimal("APIMON_T", Decimal(0)), "-Infinity", "not a finite"),
        (lambda: env.env_decimal("APIMON_T", Decimal(0)), "sNaN", "not a finite"),
        (lambda: env.env_float_seconds("APIMON_T", 1.0), "inf", "not a finite"),
        (lambda: env.env_port("APIMON_T", 25), "65536", "must be at most 65535"),
        (lambda: env.env_url("APIMON_T", "http://a"), "http://", "is not a URL"),
        (lambda: env.env_url("APIMON_T", "http://a"), "http://a:x", "has a bad port"),
        (lambda: env.env_url("APIMON_T", "http://a"), "http://a/?q=1", "a query"),
        (
            lambda: env.env_choice("APIMON_T", "A", {"A", "B"}, ignore_case=True),
            "c",
            "not one of: A, B",
        ),
    ],
)
def test_the_strict_readers_reject_what_they_cannot_use(
    monkeypatch, reader, raw, message
):
    monkeypatch.setenv("APIMON_T", raw)
    with pytest.raises(ImproperlyConfigured, match=f"APIMON_T.*{message}"):
        reader()


def test_the_strict_readers_accept_good_values(monkeypatch):
    monkeypatch.setenv("APIMON_T", "b")
    assert env.env_choice("APIMON_T", "A", {"A", "B"}, ignore_case=True) == "B"
    monkeypatch.setenv("APIMON_T", "HTTPS://Example.com:8443/base/")
    assert env.env_url("APIMON_T", "http://a") == "HTTPS://Example.com:8443/base"
    monkeypatch.setenv("APIMON_T", "65535")
    assert env.env_port("APIMON_T", 25) == 65535
    monkeypatch.setenv("APIMON_T", "100")
    assert env.env_decimal(
        "APIMON_T", Decimal(0), minimum=Decimal(0), maximum=Decimal(100)
    ) == Decimal(100)


# --- Email: EMAIL_HOST set → SMTP -----------------------------------------------------


class _SMTPSink(socketserver.StreamRequestHandler):
    """Just enough SMTP to accept one message; it keeps what it was sent."""

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self.reply("220 sink ready")
        while line := self.rfile.readline():
            command = line.decode().strip()
            self.server.commands.append(command)
            verb = command.split(" ", 1)[0].upper()
            if verb == "DATA":
                self.reply("354 go ahead")
                data = []
                while (row := self.rfile.readline()) not in (b".\r\n", b""):
                    data.append(row.decode())
                self.server.messages.append("".join(data))
                self.reply("250 queued")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:  # EHLO, MAIL FROM, RCPT TO, RSET, NOOP
                self.reply("250 ok")


def test_email_host_sends_mail_over_smtp_there():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SMTPSink)
    server.commands, server.messages = [], []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = run_django(
            "from django.core.mail import mailers, send_mail; "
            "print(type(mailers.default).__module__); "
            "send_mail('Hello', 'It works.', None, ['to@example.test'])",
            EMAIL_HOST="127.0.0.1",
            EMAIL_PORT=str(server.server_address[1]),
            EMAIL_USE_TLS="0",
            DEFAULT_FROM_EMAIL="apimon <noreply@apimon.example>",
        )
    finally:
        server.shutdown()
        server.server_close()
    assert result.stdout.strip() == "django.core.mail.backends.smtp", result.stderr
    commands = [c.lower() for c in server.commands]
    assert "mail from:<noreply@apimon.example>" in commands
    assert "rcpt to:<to@example.test>" in commands
    (message,) = server.messages
    assert "Subject: Hello" in message and "It works." in message


def test_email_host_defaults_to_the_submission_port_with_tls():
    result = run_django(
        "from django.core.mail import mailers; m = mailers.default; "
        "print(type(m).__name__, m.host, m.port, m.use_tls, m.username, m.password)",
        EMAIL_HOST="smtp.example.com",
        EMAIL_HOST_USER="apimon",
        EMAIL_HOST_PASSWORD="s3cret",
    )
    assert result.stdout.split() == [
        "EmailBackend",
        "smtp.example.com",
        "587",
        "True",
        "apimon",
        "s3cret",
    ], result.stderr


def test_without_email_host_development_prints_mail_to_the_console():
    result = run_django(
        "from django.core.mail import mailers; print(type(mailers.default).__module__)"
    )
    assert result.stdout.strip() == "django.core.mail.backends.console", result.stderr


# --- Accounts -------------------------------------------------------------------------


def test_account_email_verification_comes_from_the_environment():
    code = (
        "from django.conf import settings; print(settings.ACCOUNT_EMAIL_VERIFICATION)"
    )
    assert run_django(code).stdout.strip() == "optional"
    mandatory = run_django(code, ACCOUNT_EMAIL_VERIFICATION="mandatory")
    assert mandatory.stdout.strip() == "mandatory", mandatory.stderr
    bad = run_django(code, ACCOUNT_EMAIL_VERIFICATION="always")
    assert "ACCOUNT_EMAIL_VERIFICATION='always'" in bad.stderr
