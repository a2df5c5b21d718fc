"""apimon settings: every value comes from the environment (see README "Configuration").

Defaults run with nothing installed: an SQLite file under var/, no Redis (a file-based
cache under var/, Celery on Kombu's filesystem transport), and the bundled Stripe emulator.
`DATABASE_URL=postgres://…` and `REDIS_URL=redis://…` switch to the real services.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

from apimon.env import (
    env_bool,
    env_choice,
    env_decimal,
    env_float_seconds,
    env_host,
    env_int,
    env_list,
    env_networks,
    env_port,
    env_rate,
    env_str,
    env_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("APIMON_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", True)

if DEBUG:
    SECRET_KEY = env_str(
        "SECRET_KEY", "insecure-dev-key-apimon-do-not-use-in-production"
    )
    ALLOWED_HOSTS = env_list(
        "ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"]
    )
else:
    SECRET_KEY = env_str("SECRET_KEY")
    ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [])
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured("ALLOWED_HOSTS must be set when DEBUG is off")

# The address users reach apimon at: used in emails and in the return URLs that
# Stripe (or the emulator) sends the browser back to.
SITE_URL = env_url("SITE_URL", "http://127.0.0.1:8000")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [SITE_URL])
# A failed CSRF check answers with apimon's own page (apimon/errors.py).
CSRF_FAILURE_VIEW = "apimon.errors.csrf_failure"

INSTALLED_APPS = [
    # django.contrib.admin with apimon's site: its login is allauth's (rate limits,
    # lock-out, MFA) and staff need MFA to enter (apimon/admin_site.py).
    "apimon.admin_apps.ApimonAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "apimon",
    "publisher",
    "store",
    "gateway",
    "billing",
]

MIDDLEWARE = [
    # First: answers /healthz before host validation and the HTTPS redirect, so a
    # health check on 127.0.0.1 over plain HTTP gets its 200 (README "Deployment").
    "apimon.middleware.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django_permissions_policy.PermissionsPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Request id (X-Request-ID), user and organization on every log line.
    "apimon.logcontext.RequestContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

ROOT_URLCONF = "apimon.urls"
WSGI_APPLICATION = "apimon.wsgi.application"
ASGI_APPLICATION = "apimon.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "apimon.context_processors.apimon",
            ],
            # A `{% url %}` that remembers its answers, in every template
            # (apimon/templatetags/memo_urls.py).
            "builtins": ["apimon.templatetags.memo_urls"],
        },
    },
]

# --- Database ---------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL", None)
if DATABASE_URL:
    try:
        DATABASES = {
            "default": dj_database_url.parse(
                DATABASE_URL,
                conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0),
            )
        }
    except ValueError as exc:
        raise ImproperlyConfigured(
            f"DATABASE_URL is not a database URL: {exc}"
        ) from exc
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "apimon.sqlite3",
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Threads of a web process that serve Django's pages (apimon/asgi.py); each keeps a
# database connection. The gateway's requests never take one.
WEB_PAGE_THREADS = env_int("WEB_PAGE_THREADS", 4, minimum=1)

# --- Redis, cache, Celery ---------------------------------------------------------
REDIS_URL = env_str("REDIS_URL", None)
if REDIS_URL and not REDIS_URL.startswith(("redis://", "rediss://", "unix://")):
    raise ImproperlyConfigured(f"REDIS_URL={REDIS_URL!r} must start with redis://")

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "apimon",
        }
    }
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
else:
    # A cache in files under VAR_DIR, so every process of `make run` sees the same
    # entries: the heartbeat the worker writes and the home page reads, allauth's rate
    # limits, the password attempts of billing.forms, the reconcile debounce set by web
    # (webhooks) and worker alike. An in-process cache keeps one copy per process.
    # See docs/decisions.md "Jobs".
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
            "OPTIONS": {"MAX_ENTRIES": 10_000},
        }
    }
    # No Redis: Kombu's filesystem transport, a real queue in a folder that the web,
    # worker and beat processes of `make run` share. No server to install.
    # (A host name only to keep Kombu from warning that none was given.)
    CELERY_BROKER_URL = "filesystem://localhost/"
    _queue_dir = VAR_DIR / "celery-queue"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir),
        "data_folder_out": str(_queue_dir),
        "processed_folder": str(VAR_DIR / "celery-processed"),
        "store_processed": False,
    }
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# --- Accounts (django-allauth) -------------------------------------------------------
AUTH_USER_MODEL = "apimon.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"
    },
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = env_choice(
    "ACCOUNT_EMAIL_VERIFICATION", "optional", {"none", "optional", "mandatory"}
)
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_ADAPTER = "apimon.adapters.AccountAdapter"
# allauth's own limits stay on (login failures, sign-ups, password resets per IP/key).
# apimon's own limits per signed-in user, counted by the same helper in Django's
# cache (apimon.views): invitations an owner sends (each one an email to an address
# they typed) and organizations a user creates.
RATE_LIMIT_INVITATIONS = env_rate("RATE_LIMIT_INVITATIONS", "30/h")
RATE_LIMIT_ORGANIZATIONS = env_rate("RATE_LIMIT_ORGANIZATIONS", "10/d")
ACCOUNT_RATE_LIMITS = {
    "login_failed": "10/m/ip,5/5m/key",
    "signup": "20/m/ip",
    "reset_password": "20/m/ip,5/m/key",
    "apimon_invitation": RATE_LIMIT_INVITATIONS and f"{RATE_LIMIT_INVITATIONS}/user",
    "apimon_organization": RATE_LIMIT_ORGANIZATIONS
    and f"{RATE_LIMIT_ORGANIZATIONS}/user",
}
# Multi-factor authentication (allauth.mfa): an authenticator app (TOTP) with
# recovery codes, for every user. Operator (staff) accounts must have it to open the
# admin when MFA_REQUIRED_FOR_STAFF is on, which it is by default outside DEBUG.
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = "apimon"
MFA_REQUIRED_FOR_STAFF = env_bool("MFA_REQUIRED_FOR_STAFF", not DEBUG)
# How many proxies in front append to X-Forwarded-For: allauth's per-address limits
# must count the client, not the load balancer (0: REMOTE_ADDR is the client).
ALLAUTH_TRUSTED_PROXY_COUNT = env_int("ALLAUTH_TRUSTED_PROXY_COUNT", 0, minimum=0)
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"
ACCOUNT_LOGOUT_REDIRECT_URL = "landing"

# --- Email ------------------------------------------------------------------------
# Django 6.1's MAILERS. EMAIL_HOST set → SMTP there; unset → the console in DEBUG and a
# local MTA (SMTP on localhost:25) in production.
_email_host = env_str("EMAIL_HOST", None)
if _email_host or not DEBUG:
    MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {
                "host": _email_host or "localhost",
                "port": env_port("EMAIL_PORT", 587 if _email_host else 25),
                "username": env_str("EMAIL_HOST_USER", ""),
                "password": env_str("EMAIL_HOST_PASSWORD", ""),
                "use_tls": env_bool("EMAIL_USE_TLS", bool(_email_host)),
            },
        }
    }
else:
    MAILERS = {"default": {"BACKEND": "django.core.mail.backends.console.EmailBackend"}}
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "apimon <noreply@apimon.localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Stripe -------------------------------------------------------------------------
# With STRIPE_SECRET_KEY unset apimon talks to the bundled emulator (stripe_emulator/).
# With DEBUG=0 that must be asked for by setting STRIPE_EMULATOR_URL, so a production
# deployment that forgot its Stripe key does not start on a Stripe that moves no money.
STRIPE_SECRET_KEY = env_str("STRIPE_SECRET_KEY", None)
STRIPE_EMULATOR = STRIPE_SECRET_KEY is None
if not STRIPE_EMULATOR and not STRIPE_SECRET_KEY.startswith(("sk_", "rk_")):
    raise ImproperlyConfigured(
        "STRIPE_SECRET_KEY must be a Stripe secret key (sk_… or rk_…); "
        "leave it unset to use the Stripe emulator"
    )
if STRIPE_EMULATOR and not DEBUG and env_str("STRIPE_EMULATOR_URL", None) is None:
    raise ImproperlyConfigured(
        "STRIPE_SECRET_KEY must be set when DEBUG is off (or set STRIPE_EMULATOR_URL "
        "to run on the Stripe emulator, which moves no money)"
    )
STRIPE_EMULATOR_URL = env_url("STRIPE_EMULATOR_URL", "http://127.0.0.1:12111")
# The secret that closes the emulator (docs/stripe-emulator.md "Closed mode"): its
# controls need it, and its API takes only the platform key `sk_test_<secret>`.
STRIPE_EMULATOR_CONTROL_SECRET = env_str("STRIPE_EMULATOR_CONTROL_SECRET", None)
# Every checkout knows the development signing secret: outside DEBUG a webhook signed
# with it could disconnect any organization's Stripe account, so it is refused.
PUBLIC_EMULATOR_WEBHOOK_SECRET = "whsec_emulator_apimon"
if STRIPE_EMULATOR:
    if STRIPE_EMULATOR_CONTROL_SECRET is not None and not re.fullmatch(
        r"[A-Za-z0-9_-]{24,}", STRIPE_EMULATOR_CONTROL_SECRET
    ):
        raise ImproperlyConfigured(
            "STRIPE_EMULATOR_CONTROL_SECRET must be at least 24 characters of "
            "letters, digits, '-' and '_'"
        )
    if not DEBUG and STRIPE_EMULATOR_CONTROL_SECRET is None:
        raise ImproperlyConfigured(
            "STRIPE_EMULATOR_CONTROL_SECRET must be set when DEBUG is off and apimon "
            "runs on the Stripe emulator (the same secret the emulator is given)"
        )
    STRIPE_SECRET_KEY = (
        f"sk_test_{STRIPE_EMULATOR_CONTROL_SECRET}"
        if STRIPE_EMULATOR_CONTROL_SECRET
        else "sk_test_emulator_platform"
    )
    STRIPE_PUBLISHABLE_KEY = env_str(
        "STRIPE_PUBLISHABLE_KEY", "pk_test_emulator_platform"
    )
    STRIPE_CONNECT_CLIENT_ID = env_str("STRIPE_CONNECT_CLIENT_ID", "ca_emulator_apimon")
    STRIPE_WEBHOOK_SECRET = env_str(
        "STRIPE_WEBHOOK_SECRET", PUBLIC_EMULATOR_WEBHOOK_SECRET if DEBUG else None
    )
    if not DEBUG and STRIPE_WEBHOOK_SECRET in (
        None,
        "",
        PUBLIC_EMULATOR_WEBHOOK_SECRET,
    ):
        raise ImproperlyConfigured(
            "STRIPE_WEBHOOK_SECRET must be set when DEBUG is off, to the emulator's "
            f"signing secret (not the public default {PUBLIC_EMULATOR_WEBHOOK_SECRET!r})"
        )
else:
    # Real Stripe: the webhook signing secret and the Connect application have no
    # sensible default; without them webhooks and Connect with Stripe would fail later.
    STRIPE_PUBLISHABLE_KEY = env_str("STRIPE_PUBLISHABLE_KEY", "")
    STRIPE_CONNECT_CLIENT_ID = env_str("STRIPE_CONNECT_CLIENT_ID", None)
    STRIPE_WEBHOOK_SECRET = env_str("STRIPE_WEBHOOK_SECRET", None)
    for _name, _value in (
        ("STRIPE_WEBHOOK_SECRET", STRIPE_WEBHOOK_SECRET),
        ("STRIPE_CONNECT_CLIENT_ID", STRIPE_CONNECT_CLIENT_ID),
    ):
        if not _value:
            raise ImproperlyConfigured(
                f"{_name} must be set when STRIPE_SECRET_KEY is set (real Stripe)"
            )
STRIPE_MAX_NETWORK_RETRIES = env_int("STRIPE_MAX_NETWORK_RETRIES", 2, minimum=0)
# Seconds one Stripe request may take before it is given up (and retried, up to
# STRIPE_MAX_NETWORK_RETRIES times): stripe-python's own default, 80 s, would hold a
# subscriber's page for minutes while Stripe does not answer.
STRIPE_TIMEOUT = env_float_seconds("STRIPE_TIMEOUT", 20.0)
if STRIPE_TIMEOUT <= 0:
    raise ImproperlyConfigured(f"STRIPE_TIMEOUT={STRIPE_TIMEOUT} must be positive")
# Run the emulator inside this process instead of over HTTP (the test suite does).
STRIPE_EMULATOR_IN_PROCESS = env_bool("STRIPE_EMULATOR_IN_PROCESS", False)
# What a new platform plan starts from in the admin (each plan keeps its own values).
PLATFORM_CURRENCY = env_str("PLATFORM_CURRENCY", "usd").strip().lower()
# pricing.currencies is a pure module (no Django imports) and billing/__init__ is empty,
# so importing it here does not set up apps.
from pricing.currencies import is_known as _is_known_currency  # noqa: E402

if not _is_known_currency(PLATFORM_CURRENCY):
    raise ImproperlyConfigured(
        f"PLATFORM_CURRENCY={PLATFORM_CURRENCY!r} is not an ISO 4217 currency code "
        "(e.g. usd, eur, gbp)"
    )
PLATFORM_DEFAULT_COMMISSION_PERCENT = env_decimal(
    "PLATFORM_DEFAULT_COMMISSION_PERCENT",
    Decimal("10"),
    minimum=Decimal("0"),
    maximum=Decimal("100"),
)
if PLATFORM_DEFAULT_COMMISSION_PERCENT.as_tuple().exponent < -2:  # type: ignore[operator]
    raise ImproperlyConfigured(
        f"PLATFORM_DEFAULT_COMMISSION_PERCENT={PLATFORM_DEFAULT_COMMISSION_PERCENT} "
        "has more than 2 decimal places"
    )

# --- Gateway ------------------------------------------------------------------------
GATEWAY_BACKEND_TIMEOUT = env_float_seconds("GATEWAY_BACKEND_TIMEOUT", 30.0)
SAMPLE_API_URL = env_url("SAMPLE_API_URL", "http://127.0.0.1:8100")
# Tenants' backend URLs may not reach the platform's own network (apimon/egress.py):
# `deny` refuses loopback, private, link-local and other non-global addresses, when the
# URL is saved and when the gateway connects, except in BACKEND_ALLOWED_NETWORKS.
# `allow` checks nothing: the default with DEBUG=1, for the demo's loopback sample API.
BACKEND_PRIVATE_NETWORKS = env_choice(
    "BACKEND_PRIVATE_NETWORKS",
    "allow" if DEBUG else "deny",
    {"allow", "deny"},
    ignore_case=True,
)
BACKEND_ALLOWED_NETWORKS = env_networks("BACKEND_ALLOWED_NETWORKS", [])
# The host the gateway answers on, alone (pages then do not answer there, and the
# gateway does not answer on the pages' host): a backend's answers are then served
# from another origin than apimon's pages. Unset: the gateway answers on any host.
GATEWAY_HOST = env_host("GATEWAY_HOST", None)
if GATEWAY_HOST and urlsplit(SITE_URL).hostname == GATEWAY_HOST:
    raise ImproperlyConfigured(
        f"GATEWAY_HOST={GATEWAY_HOST!r} is SITE_URL's host: the gateway needs a host "
        "of its own (the pages do not answer on it)"
    )
# Where callers reach the gateway: SITE_URL with GATEWAY_HOST as its host, if set.
GATEWAY_URL = SITE_URL
if GATEWAY_HOST:
    _site = urlsplit(SITE_URL)
    _netloc = f"[{GATEWAY_HOST}]" if ":" in GATEWAY_HOST else GATEWAY_HOST
    if _site.port:
        _netloc += f":{_site.port}"
    GATEWAY_URL = f"{_site.scheme}://{_netloc}"

# --- Health ---------------------------------------------------------------------
# /readyz reports the background jobs down when beat's heartbeat (every 60 s, run by
# a worker) is older than this.
READYZ_HEARTBEAT_MAX_AGE = env_float_seconds("READYZ_HEARTBEAT_MAX_AGE", 180.0)

# --- Billing ------------------------------------------------------------------------
# A period is closed this long after it ends, after a usage flush: by then every
# request the gateway admitted before the end has its final count (an in-flight
# request settles within the backend timeout). See docs/billing.md.
BILLING_USAGE_SETTLE_SECONDS = env_float_seconds(
    "BILLING_USAGE_SETTLE_SECONDS", GATEWAY_BACKEND_TIMEOUT + 5
)
# Subscriptions claimed and invoiced per transaction by the billing job.
BILLING_BATCH_SIZE = env_int("BILLING_BATCH_SIZE", 500, minimum=1)
# Days an organization's paid platform plan stays in force after its payment failed;
# then the platform dunning job moves the organization to the trial plan.
PLATFORM_PLAN_GRACE_DAYS = env_int("PLATFORM_PLAN_GRACE_DAYS", 14, minimum=1)
# Country names in billing forms (django-countries): its data lists Nauru under the
# Nauruan name "Naoero", which an English speaker looking for Nauru does not find.
COUNTRIES_OVERRIDE = {"NR": "Nauru"}

# --- Internationalisation, static -----------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
_static_root = env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")).strip()
if not _static_root:
    raise ImproperlyConfigured("STATIC_ROOT must not be empty")
# A relative STATIC_ROOT is relative to the project, whatever the working directory.
STATIC_ROOT = BASE_DIR / _static_root
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
# Django's database sessions, read in one statement written once (apimon/sessions.py).
SESSION_ENGINE = "apimon.sessions"
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG

# --- Production hardening (what `manage.py check --deploy` asks for) ----------------
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    if env_bool("SECURE_PROXY_SSL_HEADER", False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True

# Content-Security-Policy (Django's own middleware): scripts and styles only from
# apimon's static files (no inline script, event handler or style attribute in any
# page, so no nonce either); images also from https (publishers' documentation
# may show them); forms post to apimon or lead to Stripe's hosted pages (Checkout,
# Connect's OAuth), which browsers check on the redirect too. docs/decisions.md.
STRIPE_PAGES = (
    [STRIPE_EMULATOR_URL]
    if STRIPE_EMULATOR
    else ["https://checkout.stripe.com", "https://connect.stripe.com"]
)
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:", "https:"],
    "connect-src": [CSP.SELF],
    "form-action": [CSP.SELF, *STRIPE_PAGES],
    "frame-ancestors": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "object-src": [CSP.NONE],
}
# Permissions-Policy (django-permissions-policy): apimon uses none of the browser's
# devices or sensors, so no page (nor anything a page could be made to embed) may.
# The clipboard stays allowed: the API key page copies a new key.
PERMISSIONS_POLICY = {
    feature: []
    for feature in (
        "accelerometer",
        "ambient-light-sensor",
        "autoplay",
        "bluetooth",
        "browsing-topics",
        "camera",
        "display-capture",
        "geolocation",
        "gyroscope",
        "hid",
        "idle-detection",
        "magnetometer",
        "microphone",
        "midi",
        "payment",
        "screen-wake-lock",
        "serial",
        "usb",
        "xr-spatial-tracking",
    )
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "apimon.logcontext.ContextFilter"}},
    "formatters": {
        # key=value fields a log collector can parse, then the message.
        "keyvalue": {
            "format": "%(asctime)s level=%(levelname)s logger=%(name)s "
            "request_id=%(request_id)s org=%(org)s user=%(user)s %(message)s"
        }
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "keyvalue",
            "filters": ["context"],
        }
    },
    "root": {
        "handlers": ["console"],
        "level": env_choice(
            "LOG_LEVEL",
            "INFO",
            {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"},
            ignore_case=True,
        ),
    },
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
