"""Lanzuan settings: the one place that reads the environment.

Defaults are safe for production (DEBUG off, a SECRET_KEY required) except where
`DEBUG=1`: then a newcomer with only Python gets SQLite and a broker that needs no
server, both under LANZUAN_VAR_DIR. Bad values stop the process at start-up.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _
from kombu import Exchange, Queue

# Django's generic classes take their type parameters at run time too (ModelForm[Invitation],
# admin.TabularInline[Step, UnsubscribeRequest]), as mypy --strict asks of them.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use 1/0, true/false)")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    if raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name, "")
    if raw == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
VAR_DIR = Path(os.environ.get("LANZUAN_VAR_DIR") or BASE_DIR / "var").resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)
# Scrub jobs are split into chunks of about this many bytes of the upload, run by the workers.
SCRUB_CHUNK_BYTES = int(os.environ.get("LANZUAN_SCRUB_CHUNK_BYTES") or 8 * 2**20)
# The suppression indexes (unsubscribe/suppressions/index.py): sorted arrays, memory-mapped by
# every process of the host; rebuilt from PostgreSQL when missing. Local disk, not shared.
SUPPRESSION_INDEX_DIR = Path(
    os.environ.get("LANZUAN_SUPPRESSION_INDEX_DIR") or VAR_DIR / "suppression-index"
).resolve()


def _secret_key() -> str:
    key = os.environ.get("SECRET_KEY", "")
    if key:
        if len(key) < 32:
            raise ImproperlyConfigured("SECRET_KEY must be at least 32 characters")
        return key
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY is required when DEBUG is off")
    # Development only: a key generated once and kept under var/, never in git.
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
# Keyed hashes of phone numbers use their own secret so SECRET_KEY can rotate
# without breaking suppression lookups. Falls back to SECRET_KEY.
PHONE_HASH_KEY = os.environ.get("PHONE_HASH_KEY") or SECRET_KEY
# Stored secrets (gateway tokens, signing and webhook secrets, inbound credentials) are
# encrypted with these Fernet keys (lanzuan/fields.py): the first encrypts, all decrypt.
# Required with DEBUG off (a system check error); with DEBUG on a key is derived from SECRET_KEY.
LANZUAN_FIELD_KEYS = env_list("LANZUAN_FIELD_KEYS", [])
# Audit checkpoints and receipts are signed with Ed25519 (lanzuan/signing_keys.py): base64 raw
# private keys, the first signs, all verify; retired public keys only verify. Required with DEBUG
# off (a system check error); with DEBUG on a key is generated once into LANZUAN_VAR_DIR.
LANZUAN_SIGNING_KEYS = env_list("LANZUAN_SIGNING_KEYS", [])
LANZUAN_RETIRED_PUBLIC_KEYS = env_list("LANZUAN_RETIRED_PUBLIC_KEYS", [])
# The tamper-evident audit record (unsubscribe/audit/) is always on. LANZUAN_AUDIT=0 exists only
# for the benchmark's baseline (bench/bench_audit.py) and is refused unless DEBUG is on.
LANZUAN_AUDIT = env_bool("LANZUAN_AUDIT", True)
if not LANZUAN_AUDIT and not DEBUG:
    raise ImproperlyConfigured(
        "LANZUAN_AUDIT=0 is for benchmarks only (DEBUG=1): the audit record is always on"
    )
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# Public base URL for links in messages (receipts, status links) and for
# verifying Twilio signatures behind a proxy.
PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_api_key",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "simple_history",
    "django_celery_beat",
    "tenants",
    "notifications",
    "unsubscribe",
    "unsubscribe.partner",
    "unsubscribe.optout",
    "unsubscribe.inbound",
    "unsubscribe.voice",
]

MIDDLEWARE = [
    # First: every error under /api/ becomes a problem document, whichever layer made it.
    "unsubscribe.partner.problems.ApiProblemMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "lanzuan.middleware.ContentSecurityPolicyMiddleware",
    "lanzuan.middleware.TimeZoneMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Which tenants' rows PostgreSQL lets this request see (row-level security), by who is signed in.
    "tenants.middleware.DatabaseScopeMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
]

ROOT_URLCONF = "lanzuan.urls"
WSGI_APPLICATION = "lanzuan.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'lanzuan.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory, for the test database too: the Celery worker that
    # integration tests start in another process must see the same data.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's backend plus row-level security's `app.tenant_id`, kept in step (tenants/db_scope.py).
    DATABASES["default"]["ENGINE"] = "tenants.postgresql"
# A PostgreSQL streaming replica that suppression checks read from when it has replayed everything
# committed on the primary, else they read from the primary (lanzuan/replica.py). Unset: one database.
DATABASE_REPLICA_URL = os.environ.get("DATABASE_REPLICA_URL", "")
# How long a check waits for the replica to catch up before it reads from the primary instead.
DATABASE_REPLICA_WAIT_MS = env_int("DATABASE_REPLICA_WAIT_MS", 10)
if DATABASE_REPLICA_URL:
    _replica = dj_database_url.parse(DATABASE_REPLICA_URL, conn_max_age=60)
    if DATABASES["default"]["ENGINE"] != "tenants.postgresql" or _replica["ENGINE"] not in (
        "django.db.backends.postgresql",
        "tenants.postgresql",
    ):
        raise ImproperlyConfigured("DATABASE_REPLICA_URL needs PostgreSQL for DATABASE_URL and the replica")
    # The primary's engine (the tenant scope for row-level security is sent on this connection too)
    # and options; a replica that does not answer must not hold a check for long.
    _replica["ENGINE"] = DATABASES["default"]["ENGINE"]
    _replica["OPTIONS"] = {
        "connect_timeout": 2,
        **DATABASES["default"].get("OPTIONS", {}),
        **_replica.get("OPTIONS", {}),
    }
    # Tests: the alias is the test database itself, not a second one to create.
    _replica["TEST"] = {"MIRROR": "default"}
    DATABASES["replica"] = _replica
    DATABASE_ROUTERS = ["lanzuan.replica.ReplicaRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Every key Lanzuan keeps in Redis (cache and broker) starts with this prefix, so that one Redis
# database can be shared: by several sites, or by the parallel workers of a test run (tests/sandbox.py).
REDIS_KEY_PREFIX = os.environ.get("LANZUAN_REDIS_KEY_PREFIX", "").strip().rstrip(":")

CACHE_URL = os.environ.get("CACHE_URL", "")
if CACHE_URL.startswith("redis://") or CACHE_URL.startswith("rediss://"):
    CACHES = {
        "default": {
            "BACKEND": "lanzuan.cache.PrefixedRedisCache",
            "LOCATION": CACHE_URL,
            "KEY_PREFIX": REDIS_KEY_PREFIX,
        }
    }
elif CACHE_URL in ("", "file"):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }
elif CACHE_URL == "locmem":
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
else:
    raise ImproperlyConfigured(f"CACHE_URL={CACHE_URL!r}: use redis://…, file or locmem")

# Staff email (invitations; the SMTP gateway with no server of its own). Development
# prints it on the console instead of needing a mail server.
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND") or (
    "django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend"
)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", _("Simplified Chinese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
MEDIA_ROOT = VAR_DIR / "media"
MEDIA_URL = "media/"
WHITENOISE_USE_FINDERS = True  # serve app static files without collectstatic in dev and tests

LOGIN_URL = "admin:login"

# --- HTTPS and response headers (README, "Production settings") ------------------
# Safe for production when DEBUG is off; each can be changed from the environment.
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# Off unless asked for: a plain-http deployment (a demo, a check from the outside, a proxy that
# redirects itself) must not be bounced to an https port nobody listens on. README sets it on.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 365 * 24 * 60 * 60)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)


def _proxy_ssl_header() -> tuple[str, str] | None:
    """ "HTTP_X_FORWARDED_PROTO,https": the header the TLS-terminating proxy sets (and
    strips from clients), so that request.is_secure() is true behind it. Unset: none
    is trusted (a client could send it)."""
    raw = os.environ.get("SECURE_PROXY_SSL_HEADER", "").strip()
    if not raw:
        return None
    header, _sep, value = raw.partition(",")
    if not header.startswith("HTTP_") or not value.strip():
        raise ImproperlyConfigured(
            f"SECURE_PROXY_SSL_HEADER={raw!r}: use the META name and value, e.g. HTTP_X_FORWARDED_PROTO,https"
        )
    return header.strip(), value.strip()


SECURE_PROXY_SSL_HEADER = _proxy_ssl_header()
# The META name of the header the proxy puts the client's address in (e.g.
# HTTP_X_REAL_IP), for the abuse limits. Unset: REMOTE_ADDR (never trust a header
# the proxy does not set, or clients choose their own address).
LANZUAN_CLIENT_IP_HEADER = os.environ.get("LANZUAN_CLIENT_IP_HEADER", "").strip()
# Content-Security-Policy (lanzuan.middleware); empty sends none. The pages and the
# admin carry inline brand styles and a few inline scripts, hence 'unsafe-inline'.
DEFAULT_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
LANZUAN_CSP = os.environ.get("LANZUAN_CSP", "" if DEBUG else DEFAULT_CSP).strip()

# --- Celery -------------------------------------------------------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or "filesystem://"
if CELERY_BROKER_URL == "filesystem://":
    _broker_dir = VAR_DIR / "broker"
    (_broker_dir / "queue").mkdir(parents=True, exist_ok=True)
    (_broker_dir / "processed").mkdir(parents=True, exist_ok=True)
    (_broker_dir / "control").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        "polling_interval": 0.2,  # the file-system broker polls; a short interval keeps the demo snappy
    }
else:
    # Longer than the longest task (hard limit below), so an acks_late task on a
    # live worker is never redelivered to a second worker while still running.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600)}
    if REDIS_KEY_PREFIX and CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
        # queues, unacknowledged messages and control channels alike
        CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"] = f"{REDIS_KEY_PREFIX}:"
CELERY_TASK_ALWAYS_EAGER = False
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True  # results could hold personal data; we keep state in our own rows
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = 600
CELERY_TASK_TIME_LIMIT = 900
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Every periodic task, in one place. Beat's DatabaseScheduler writes these into its PeriodicTask
# rows (matched by name) each time it starts, so staff see and may pause them in the admin. The
# names are those of the data migrations that used to add them, so a database they ran on keeps
# one row per task.
# How often the pipeline and partner sweeps run: what a lost task or a due retry waits at most.
SWEEP_SECONDS = env_int("LANZUAN_SWEEP_SECONDS", 30)
if SWEEP_SECONDS < 1:
    raise ImproperlyConfigured("LANZUAN_SWEEP_SECONDS must be at least 1")
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    "Lanzuan pipeline sweep": {  # requests and steps the broker lost, due retries
        "task": "unsubscribe.tasks.pipeline_sweep",
        "schedule": timedelta(seconds=SWEEP_SECONDS),
    },
    # Raw numbers of requests that never completed, past their erasure deadline; then
    # request records past each tenant's retention.
    "Lanzuan record retention purge": {
        "task": "unsubscribe.tasks.purge_expired_records",
        "schedule": timedelta(hours=1),
    },
    "Lanzuan stored file expiry": {  # uploads, scrub lists, results and work files past their limit
        "task": "unsubscribe.tasks.expire_stored_files",
        "schedule": timedelta(hours=1),
    },
    "Lanzuan message sweep": {
        "task": "notifications.tasks.messages_sweep",
        "schedule": timedelta(seconds=60),
    },
    "Lanzuan outbox rotation and expiry": {  # the file gateway's outbox (README, "The file gateway")
        "task": "notifications.tasks.outbox_expire",
        "schedule": timedelta(days=1),
    },
    "Lanzuan partner sweep (webhooks, scrub jobs)": {
        "task": "unsubscribe.partner.tasks.partner_sweep",
        "schedule": timedelta(seconds=SWEEP_SECONDS),
    },
    "Lanzuan one-time code sweep": {  # blanks the number of codes that expired unused
        "task": "unsubscribe.optout.tasks.verifications_sweep",
        "schedule": timedelta(seconds=60),
    },
    "Lanzuan reply SMS number sweep": {  # raw numbers of unroutable and long-held replies
        "task": "unsubscribe.inbound.tasks.inbound_numbers_sweep",
        "schedule": timedelta(days=1),
    },
    "Lanzuan abandoned voice calls": {  # calls left mid-menu: ended, raw number blanked
        "task": "unsubscribe.voice.tasks.end_stale_voice_calls",
        "schedule": timedelta(minutes=15),
    },
    "Lanzuan audit checkpoints": {  # each tenant's audit chain head, signed (unsubscribe/audit/)
        "task": "unsubscribe.tasks.audit_checkpoints",
        "schedule": timedelta(hours=1),
    },
    "Lanzuan audit verification": {  # audit_verify for every tenant; a break needs attention
        "task": "unsubscribe.tasks.audit_verify_daily",
        "schedule": timedelta(days=1),
    },
}
CELERY_TIMEZONE = TIME_ZONE
# A broker outage must not end the worker or beat (issue 19, item 6; lanzuan/celery.py):
# reconnect for as long as it takes (Celery's default gives up after 100 tries), at
# start-up too; and the consumer without Gossip and Mingle, whose reconnect path crashes.
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES: int | None = None
CELERY_WORKER_CONSUMER = "lanzuan.celery:Consumer"
# Tasks running when the connection drops finish and are acknowledged late or run again
# (every task is idempotent: claims and leases on our own rows). Celery's opt-in
# cancellation crashes the worker on reconnect (celery/celery#9250): left off, explicitly.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False

# --- Celery queues and webhook fairness (issue 19, item 8) -------------------------
# Opt-out work goes ahead of webhook fan-out. Two queues: "pipeline" (the default) holds
# everything an opt-out needs (requests, steps, messages, one-time codes) and the rest
# (sweeps, imports, scrub jobs); "webhooks" holds partner webhook deliveries only.
# Production runs one worker per queue (README, "Production"), so no webhook backlog can
# delay an opt-out. A worker started without -Q consumes both (`celery -A lanzuan worker`,
# the tests' workers) and, on Redis, always takes from "pipeline" first ("priority": the
# queues in the order below); the file-system broker of `make run` alternates between
# queues, so lanzuan/devserver.py starts a second worker for "webhooks".
CELERY_TASK_DEFAULT_QUEUE = "pipeline"
CELERY_TASK_QUEUES = (
    # A person's confirmation (the confirm step, unsubscribe/pipeline/services.py) on a queue of
    # its own, taken first: a burst of opt-outs in "pipeline" never pushes one back (issue 13).
    Queue("confirmations", Exchange("confirmations"), routing_key="confirmations"),
    Queue("pipeline", Exchange("pipeline"), routing_key="pipeline"),
    Queue("webhooks", Exchange("webhooks"), routing_key="webhooks"),
)
CELERY_TASK_ROUTES = {
    "unsubscribe.partner.tasks.deliver_webhook": {"queue": "webhooks"},
    "*": {"queue": "pipeline"},
}
CELERY_BROKER_TRANSPORT_OPTIONS["queue_order_strategy"] = "priority"
# A worker keeps its database connection from task to task, as a web process keeps it from
# request to request (CONN_MAX_AGE; lanzuan/celery.py closes an unusable or obsolete one before
# each task). Celery's Django fix-up otherwise closes it around every task: a new PostgreSQL
# connection per task, a fifth of a short task's time.
CELERY_DB_REUSE_MAX = 1_000_000
# A tenant may register at most this many webhook endpoints (each event fans out to every
# one), and at most this many of its deliveries are queued or being sent at once; the rest
# wait as rows and go out as those finish, so one tenant's fan-out never fills the queue
# ahead of another's (unsubscribe/partner/webhooks.py).
LANZUAN_MAX_WEBHOOK_ENDPOINTS = env_int("LANZUAN_MAX_WEBHOOK_ENDPOINTS", 10)
LANZUAN_WEBHOOK_IN_FLIGHT_PER_TENANT = env_int("LANZUAN_WEBHOOK_IN_FLIGHT_PER_TENANT", 4)
if min(LANZUAN_MAX_WEBHOOK_ENDPOINTS, LANZUAN_WEBHOOK_IN_FLIGHT_PER_TENANT) < 1:
    raise ImproperlyConfigured(
        "LANZUAN_MAX_WEBHOOK_ENDPOINTS and LANZUAN_WEBHOOK_IN_FLIGHT_PER_TENANT must be at least 1"
    )

# --- DRF ----------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["tenants.authentication.TenantAPIKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["tenants.authentication.HasTenantAPIKey"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    # Errors as RFC 9457 problem details, with a field-level `errors` list.
    "EXCEPTION_HANDLER": "unsubscribe.partner.problems.problem_exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["unsubscribe.partner.throttling.ApiKeyRateThrottle"],
}
# Per-API-key rates; counters live in the cache (Redis in production).
LANZUAN_API_RATES = {
    "partner": os.environ.get("LANZUAN_API_RATE", "600/min"),
    "partner_bulk": os.environ.get("LANZUAN_API_BULK_RATE", "60/min"),  # bulk check, scrub upload, import
}
# 10,000 numbers or subscriptions in one JSON body fit comfortably.
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
# Uploads (issue 19, item 11), refused before they are read (lanzuan/uploads.py). One scrub
# list: 10,000,000 numbers one a line ("+8613800138000\r\n", 16 bytes: 160 MB) fit with room
# for quotes or spaces. One admin CSV import: about a million subscriptions. Per API key and
# day of the tenant's calendar (unsubscribe/partner/upload_limits.py): scrub uploads and API
# imports together, by number and by bytes of request bodies.
LANZUAN_SCRUB_MAX_UPLOAD_BYTES = env_int("LANZUAN_SCRUB_MAX_UPLOAD_BYTES", 200 * 1024 * 1024)
LANZUAN_IMPORT_MAX_UPLOAD_BYTES = env_int("LANZUAN_IMPORT_MAX_UPLOAD_BYTES", 64 * 1024 * 1024)
LANZUAN_UPLOADS_PER_KEY_PER_DAY = env_int("LANZUAN_UPLOADS_PER_KEY_PER_DAY", 200)
LANZUAN_UPLOAD_BYTES_PER_KEY_PER_DAY = env_int("LANZUAN_UPLOAD_BYTES_PER_KEY_PER_DAY", 2 * 1024**3)
if (
    min(
        LANZUAN_SCRUB_MAX_UPLOAD_BYTES,
        LANZUAN_IMPORT_MAX_UPLOAD_BYTES,
        LANZUAN_UPLOADS_PER_KEY_PER_DAY,
        LANZUAN_UPLOAD_BYTES_PER_KEY_PER_DAY,
    )
    < 1
):
    raise ImproperlyConfigured(
        "LANZUAN_SCRUB_MAX_UPLOAD_BYTES, LANZUAN_IMPORT_MAX_UPLOAD_BYTES, LANZUAN_UPLOADS_PER_KEY_PER_DAY and "
        "LANZUAN_UPLOAD_BYTES_PER_KEY_PER_DAY must be at least 1"
    )
SPECTACULAR_SETTINGS = {
    "TITLE": "Lanzuan partner API",
    "DESCRIPTION": "File unsubscribe requests, check suppressions and scrub lists for one tenant.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Lanzuan ------------------------------------------------------------------
# The file gateway (the demo default) appends outgoing messages here.
OUTBOX_PATH = Path(os.environ.get("LANZUAN_OUTBOX_PATH") or VAR_DIR / "outbox.jsonl")
PHONE_DEFAULT_REGION = os.environ.get("PHONE_DEFAULT_REGION", "CN")
# Networks (optionally @ports) outbound calls may reach besides public https
# (lanzuan.outbound). Development: loopback on the ephemeral ports test servers bind,
# not PostgreSQL, Redis or the dev server itself.
LANZUAN_OUTBOUND_ALLOW = env_list(
    "LANZUAN_OUTBOUND_ALLOW", ["127.0.0.0/8@32768-65535", "::1/128@32768-65535"] if DEBUG else []
)
# Pipeline steps: first retry after up to RETRY_BASE s, doubling, capped at 5 min.
LANZUAN_RETRY_BASE_SECONDS = float(os.environ.get("LANZUAN_RETRY_BASE_SECONDS") or 2)
# A step's lease is its target's timeout (Lanzuan's own steps: this one) plus the margin; a
# worker that dies holding a lease is replaced once it expires.
LANZUAN_INTERNAL_STEP_TIMEOUT_SECONDS = env_int("LANZUAN_INTERNAL_STEP_TIMEOUT_SECONDS", 30)
LANZUAN_STEP_LEASE_MARGIN_SECONDS = env_int("LANZUAN_STEP_LEASE_MARGIN_SECONDS", 60)
# Reply SMS: lifting an opt-out is the most dangerous thing a reply can do, so a
# re-subscribe acts only at this confidence (explicit codes such as START/重新订阅 score
# 0.99; a learned guess below it lifts nothing). Unroutable replies keep the raw number
# this many days for staff, then a daily sweep blanks it.
LANZUAN_RESUBSCRIBE_MIN_CONFIDENCE = float(os.environ.get("LANZUAN_RESUBSCRIBE_MIN_CONFIDENCE") or 0.9)
LANZUAN_UNROUTED_NUMBER_DAYS = env_int("LANZUAN_UNROUTED_NUMBER_DAYS", 7)
# A request that does not complete (it needs attention, or its steps stall) keeps its
# raw number at most until its erasure deadline: the tenant's erasure delay counted from
# filing, plus this many days for staff to finish it. Then the hourly purge erases the
# number anyway (hash and mask stay) and the request stays in needs attention.
LANZUAN_STALLED_ERASURE_CEILING_DAYS = env_int("LANZUAN_STALLED_ERASURE_CEILING_DAYS", 30)
if not 1 <= LANZUAN_STALLED_ERASURE_CEILING_DAYS <= 3650:
    raise ImproperlyConfigured("LANZUAN_STALLED_ERASURE_CEILING_DAYS must be between 1 and 3650")
# The one-stop hub speaks for the platform, not for one provider: its one-time-code
# SMS is signed with the platform's name (zh sign, English name) and sent through the
# platform's own sender: an HTTP gateway signed like lanzuan.signing, or the file
# gateway (outbox) in development.
LANZUAN_PLATFORM_NAME = os.environ.get("LANZUAN_PLATFORM_NAME") or "蓝钻退订平台"
LANZUAN_PLATFORM_NAME_EN = os.environ.get("LANZUAN_PLATFORM_NAME_EN") or "Lanzuan"
LANZUAN_PLATFORM_SMS_URL = os.environ.get("LANZUAN_PLATFORM_SMS_URL", "")
LANZUAN_PLATFORM_SMS_SECRET = os.environ.get("LANZUAN_PLATFORM_SMS_SECRET", "")
LANZUAN_PLATFORM_SMS_KEY_ID = os.environ.get("LANZUAN_PLATFORM_SMS_KEY_ID", "")
if LANZUAN_PLATFORM_SMS_URL and len(LANZUAN_PLATFORM_SMS_SECRET) < 16:
    raise ImproperlyConfigured("LANZUAN_PLATFORM_SMS_URL needs LANZUAN_PLATFORM_SMS_SECRET (16+ characters)")
# The file gateway (OUTBOX_PATH, every number and code in clear) is a development
# sender only: the fallback for a tenant without a gateway, and the hub's sender
# without LANZUAN_PLATFORM_SMS_URL, only with DEBUG on or LANZUAN_FILE_GATEWAY=1
# (demos, tests, outside checks). Otherwise such messages fail, visibly.
LANZUAN_FILE_GATEWAY = env_bool("LANZUAN_FILE_GATEWAY", DEBUG)
# The outbox rotates daily or past this size, and rotated files are deleted after
# this many days (notifications.tasks.outbox_expire, daily in beat).
LANZUAN_OUTBOX_MAX_BYTES = env_int("LANZUAN_OUTBOX_MAX_BYTES", 10 * 1024 * 1024)
LANZUAN_OUTBOX_KEEP_DAYS = env_int("LANZUAN_OUTBOX_KEEP_DAYS", 3)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
