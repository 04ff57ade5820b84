"""Settings: everything an operator may change is read from the environment here.

Defaults run the embedded set-up (SQLite + django-q2's ORM broker) and hold nothing secret.
`.env.example` lists every variable.
"""

import ipaddress
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# A development key only; production sets SECRET_KEY (check --deploy reports the default).
SECRET_KEY = env("SECRET_KEY", default="django-insecure-dev-only-change-me-in-production")
DEBUG = env.bool("DEBUG", default=True)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# Scheme and host the tracking links shown to copy start with (https://go.example.com).
# Empty: the host the admin page was opened on.
PUBLIC_BASE_URL = env("PUBLIC_BASE_URL", default="").strip().rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "affiliates",
    "conversions",
    "postbacks",
    "apitokens",
    "portal",
    "demo",
    "axes",
]

MIDDLEWARE = [
    # First: probes by IP over plain HTTP get their answer (no host check, no HTTPS redirect).
    "trackdesk.middleware.HealthCheckMiddleware",
    # /metrics, for the same reason; protected by METRICS_TOKEN / METRICS_ALLOWED_IPS instead.
    "trackdesk.metrics.MetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "trackdesk.middleware.RequestSizeLimitMiddleware",
    # 503 + Retry-After instead of a 500 when a view finds the database unreachable.
    "trackdesk.middleware.DatabaseUnavailableMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into its 429 answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "trackdesk.urls"
WSGI_APPLICATION = "trackdesk.wsgi.application"

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
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web requests and the worker write the same file: WAL, IMMEDIATE transactions and a busy
    # timeout keep "database is locked" away (measured in shared/reference/django-q2.md).
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not memory, so a qcluster started by an end-to-end test shares the test database.
    DATABASES["default"]["TEST"] = {
        "NAME": env("SQLITE_TEST_DB", default=str(BASE_DIR / "test_db.sqlite3")),
    }
elif env("TEST_DATABASE_NAME", default=""):
    # Lets two test runs share one PostgreSQL server without dropping each other's database.
    DATABASES["default"]["TEST"] = {"NAME": env("TEST_DATABASE_NAME")}
# Reuse a connection for a minute instead of opening one per request (a new PostgreSQL
# connection costs milliseconds); checked before reuse, so a restarted server is not a 500.
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Broker and cache -----------------------------------------------------------------------
REDIS_URL = env("REDIS_URL", default="")

Q_CLUSTER = {
    "name": env("Q_CLUSTER_NAME", default="postbacks"),
    "workers": env.int("Q_WORKERS", default=2),
    # Our own tables schedule retries; a task that fails is acknowledged, never re-run blindly.
    "timeout": 60,
    "retry": 180,
    "max_attempts": 1,
    "ack_failures": True,
    "save_limit": -1,
    "catch_up": False,
    "queue_limit": env.int("Q_WORKERS", default=2) * 2,
    # django-q2 replaces a worker after 500 tasks by default: at 100 conversions/s both workers
    # reached it together every 10 s and no worker ran until the guard's next round (up to
    # 0.5 s), which was the commit -> sink p99 of the latency benchmark. Memory, which the
    # recycling guards, is capped instead (kB; our caches are bounded).
    "recycle": 20_000,
    "max_rss": 1024 * 1024,
    "label": "Task queue",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
    # django-q2's Redis broker; each task also wakes a drain waiting for news (trackdesk/broker.py).
    Q_CLUSTER["broker_class"] = "trackdesk.broker.WakingRedis"
    CACHES = {"default": {"BACKEND": "trackdesk.cache.RedisCache", "LOCATION": REDIS_URL}}
else:
    Q_CLUSTER["orm"] = "default"
    # The ORM broker, waiting out a database outage instead of exiting (trackdesk/broker.py).
    Q_CLUSTER["broker_class"] = "trackdesk.broker.PatientORM"
    Q_CLUSTER["poll"] = env.float("Q_POLL", default=0.1)
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Security: on when DEBUG is off, each one overridable ---------------------------------
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto (overwriting what clients send).
BEHIND_HTTPS_PROXY = env.bool("BEHIND_HTTPS_PROXY", default=not DEBUG)
if BEHIND_HTTPS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# How many proxies in front of the app append to X-Forwarded-For; 0 = the socket's address.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=1 if BEHIND_HTTPS_PROXY else 0)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=12 * 3600)
X_FRAME_OPTIONS = "DENY"
# Largest request body (bytes); bigger ones get 413 (trackdesk.middleware).
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=1_048_576)

# Admin login throttling (django-axes): after AXES_FAILURE_LIMIT wrong passwords for one
# username from one address, that pair is locked for AXES_COOLOFF_HOURS. Rows in the database.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_HOURS", default=1.0)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "trackdesk.middleware.client_ip"

# --- Auth, i18n, static ---------------------------------------------------------------------
# django-axes first: it refuses a locked-out username+IP before any password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Plain JS/CSS for the admin (placeholder picker, preview, dashboard); no build step.
STATICFILES_DIRS = [BASE_DIR / "static"]

# --- API ------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "trackdesk.authentication.TokenAuthentication",  # remembers users a few seconds
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Model permissions (view/add/change/delete) for tokens and sessions alike: docs/api.md.
    "DEFAULT_PERMISSION_CLASSES": ["trackdesk.permissions.ModelPermissions"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["trackdesk.parsers.JSONParser"],  # with a nesting limit
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    # DRF's throttles, letting requests through while the cache (Redis) is down.
    "DEFAULT_THROTTLE_CLASSES": [
        "trackdesk.throttling.UserRateThrottle",
        "trackdesk.throttling.AnonRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "user": env("API_THROTTLE_USER", default="10000/min"),
        "anon": env("API_THROTTLE_ANON", default="600/min"),
    },
    "DEFAULT_SCHEMA_CLASS": "trackdesk.schema.AutoSchema",
    # Client address for anonymous throttling: X-Forwarded-For only from our own proxies.
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
}
# TokenAuthentication comes first so a call without credentials gets 401 (with WWW-Authenticate).

SPECTACULAR_SETTINGS = {
    "TITLE": "Affiliate postback back office API",
    "DESCRIPTION": "Conversions in, postbacks out.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and Swagger UI need a token or an admin session, like the rest of the API.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {"ConversionStatusEnum": "conversions.models.ConversionStatus"},
}

# --- Postback delivery ----------------------------------------------------------------------
# What each POSTBACK_* setting means, its type and default: postbacks/conf.py, the one place the
# code reads them. The defaults are written out again here because settings cannot import an app;
# tests/test_conf.py keeps the two equal.
POSTBACK_ALLOWED_NETWORKS = env.list("POSTBACK_ALLOWED_NETWORKS", default=[])
POSTBACK_ALLOWED_PORTS = [int(p) for p in env.list("POSTBACK_ALLOWED_PORTS", default=["80", "443"])]
POSTBACK_CA_BUNDLE = env.str("POSTBACK_CA_BUNDLE", default="")
POSTBACK_CONNECT_TIMEOUT = env.float("POSTBACK_CONNECT_TIMEOUT", default=3.0)
POSTBACK_READ_TIMEOUT = env.float("POSTBACK_READ_TIMEOUT", default=10.0)
POSTBACK_TOTAL_TIMEOUT = env.float("POSTBACK_TOTAL_TIMEOUT", default=15.0)
POSTBACK_FOLLOW_REDIRECTS = env.bool("POSTBACK_FOLLOW_REDIRECTS", default=False)
POSTBACK_MAX_REDIRECTS = env.int("POSTBACK_MAX_REDIRECTS", default=3)
POSTBACK_RESPONSE_BODY_LIMIT = env.int("POSTBACK_RESPONSE_BODY_LIMIT", default=4096)
POSTBACK_RETRY_SCHEDULE = [
    int(s)
    for s in env.list(
        "POSTBACK_RETRY_SCHEDULE", default=["60", "300", "1800", "7200", "21600", "43200", "86400"]
    )
]
POSTBACK_STALE_AFTER = env.int("POSTBACK_STALE_AFTER", default=120)
POSTBACK_CLAIM_SECONDS = env.int("POSTBACK_CLAIM_SECONDS", default=60)
POSTBACK_BREAKER_THRESHOLD = env.int("POSTBACK_BREAKER_THRESHOLD", default=5)
POSTBACK_BREAKER_COOLDOWN = env.int("POSTBACK_BREAKER_COOLDOWN", default=30)
POSTBACK_BREAKER_MAX_COOLDOWN = env.int("POSTBACK_BREAKER_MAX_COOLDOWN", default=1800)
POSTBACK_AUTO_PAUSE_AFTER = env.float("POSTBACK_AUTO_PAUSE_AFTER", default=0)
POSTBACK_ALERT_FAILURES = env.int("POSTBACK_ALERT_FAILURES", default=10)
POSTBACK_ALERT_WINDOW_HOURS = env.int("POSTBACK_ALERT_WINDOW_HOURS", default=72)
POSTBACK_MASK_SECRETS = env.bool("POSTBACK_MASK_SECRETS", default=True)
POSTBACK_LOG_RETENTION_DAYS = env.int("POSTBACK_LOG_RETENTION_DAYS", default=90)
POSTBACK_CONCURRENT_DISPATCH = env.bool("POSTBACK_CONCURRENT_DISPATCH", default=True)
POSTBACK_CONCURRENCY = env.int("POSTBACK_CONCURRENCY", default=1000)
POSTBACK_PER_HOST_CONCURRENCY = env.int("POSTBACK_PER_HOST_CONCURRENCY", default=200)
POSTBACK_BATCH_SIZE = env.int("POSTBACK_BATCH_SIZE", default=250)
POSTBACK_DRAIN_SECONDS = env.float("POSTBACK_DRAIN_SECONDS", default=20.0)
# Alert e-mails (postbacks/alerts.py). EMAIL_URL in django-environ's form, such as
# smtp+tls://user:password@smtp.example.com:587; empty: printed on the console while DEBUG is on,
# else SMTP on localhost:25. The tests use Django's in-memory backend whatever is set here.
vars().update(
    env.email_url("EMAIL_URL", default="consolemail://" if DEBUG else "smtp://localhost:25")
)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)  # seconds; a dead mail server cannot hang
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="trackdesk@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# Scheme and host of the back office, for the links in alert e-mails
# (https://backoffice.example.com); empty: PUBLIC_BASE_URL; both empty: the links are paths.
SITE_URL = env("SITE_URL", default="").strip().rstrip("/")
# Names this machine in the attempt log (which node sent what); default: the host name.
NODE_NAME = env("NODE_NAME", default="")
# ECB reference rates imported daily from this file or http(s) URL; empty: no import (offline).
ECB_RATES_SOURCE = env("ECB_RATES_SOURCE", default="").strip()

# --- Affiliate portal (docs/portal.md) -------------------------------------------------------
# A postback an affiliate creates in the portal, or a change to its request (URL, method, body,
# headers, currency, status values), waits for a manager's approval (portal/moderation.py).
PORTAL_POSTBACKS_NEED_APPROVAL = env.bool("PORTAL_POSTBACKS_NEED_APPROVAL", default=True)
# Test sends an affiliate may make from the portal per hour (counting every test send of their
# postbacks in the last hour); past it the portal says when to try again (portal/views.py).
PORTAL_TEST_SENDS_PER_HOUR = env.int("PORTAL_TEST_SENDS_PER_HOUR", default=20)

# --- Hot paths (docs/performance.md) ----------------------------------------------------------
# Seconds each process remembers the offers, affiliates, conversion types and payout rules that
# clicks and conversions look up (deactivating an offer or affiliate stops its links and its
# conversions), and API tokens with their users' permissions (trackdesk/memo.py,
# trackdesk/authentication.py): a change made elsewhere applies within this; 0 reads them on
# every request.
HOT_CONFIG_CACHE_SECONDS = env.float("HOT_CONFIG_CACHE_SECONDS", default=5.0)

# --- Metrics (trackdesk/metrics.py, docs/operations.md#metrics) ------------------------------
# /metrics answers 404 unless one of these is set; with both, a scrape must pass both.
METRICS_TOKEN = env("METRICS_TOKEN", default="")
METRICS_ALLOWED_IPS = [
    str(ipaddress.ip_network(network, strict=False))
    for network in env.list("METRICS_ALLOWED_IPS", default=[])
]
# A directory every web and worker process of this machine shares (emptied before they start);
# empty: each process counts alone. prometheus_client reads it from the environment.
PROMETHEUS_MULTIPROC_DIR = env("PROMETHEUS_MULTIPROC_DIR", default="")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # Request lines carry query strings: the pixel's token=, say. Mask them before printing.
    "filters": {"mask_secrets": {"()": "trackdesk.masking.MaskSecretsFilter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["mask_secrets"],
        }
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "axes.apps": {"level": "WARNING"},  # its start-up banner on every command
        # runserver's own handler prints request lines unfiltered; send them through ours.
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
