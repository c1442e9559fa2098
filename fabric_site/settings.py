"""Settings for Fabric Market, read from the environment.

With nothing set, the market runs *embedded*: SQLite under FABRIC_DATA_DIR, the
in-memory channel layer and Celery tasks executed inline, so one process needs
no external service. REDIS_URL switches the channel layer and Celery to Redis;
DATABASE_URL switches the records to that database (PostgreSQL).
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from fabric_site.secret import secret_key_in
from market.rates import JOIN_LIMIT_DEFAULTS, Rate, rate_parse

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("FABRIC_DATA_DIR") or BASE_DIR / "var")

# Debug pages list every URL and print the settings (database password included) to
# whoever triggers an error, so debug mode is an explicit choice for development only.
_debug = os.environ.get("FABRIC_DEBUG", "").strip() or "0"
if _debug not in ("0", "1"):
    raise ImproperlyConfigured(
        f"FABRIC_DEBUG is 1 (debug pages) or 0 (the default), not {_debug!r}"
    )
DEBUG = _debug == "1"

# Hosts that share no data folder must share DJANGO_SECRET_KEY (docs/runbook.md).
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "") or secret_key_in(DATA_DIR)

ALLOWED_HOSTS = [
    host.strip()
    for host in os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]").split(",")
    if host.strip()
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "drf_spectacular",
    "axes",
    "zones",
    "chunks",
    "market",
    "operator_ui",
    "booth_editor",
    "visit",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # last, as django-axes asks: turns a locked-out sign-in into its 429 page
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    # first: refuses a locked-out username or address before any password is hashed
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

# Failed sign-ins (the sign-in page, the admin's, HTTP Basic) are counted per username and
# per address by django-axes, in the database so that every web process sees them; at
# AXES_FAILURE_LIMIT either is refused, without checking the password, until
# AXES_COOLOFF_TIME has passed since its last failure (docs/permissions.md, "Signing in").
# Attempts while refused are not counted, so an attacker neither extends a lockout nor
# adds rows; the address is the connection's (uvicorn takes X-Forwarded-For only from
# the proxies it trusts, by default 127.0.0.1).
AXES_FAILURE_LIMIT = 10
AXES_COOLOFF_TIME = timedelta(minutes=15)
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "fabric_site.signin.lockout_response"
# A row per successful sign-in would grow for ever; failures are what the limits need.
AXES_DISABLE_ACCESS_LOG = True
# How long a web process remembers a successful HTTP Basic check (fabric_site/basic_auth.py).
BASIC_AUTH_CACHE_SECONDS = 60

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "chunks:upload"

ROOT_URLCONF = "fabric_site.urls"
ASGI_APPLICATION = "fabric_site.asgi.application"

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

DATABASE_URL = os.environ.get("DATABASE_URL", "")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
else:
    # SQLite creates the file but not its folder.
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "fabric.sqlite3",
            # Several processes write here (web processes, the outbox relay, zone workers'
            # reads): a write-ahead log lets readers go on beside a writer, and a
            # transaction that will write takes the lock when it starts, waiting up to
            # 20 s, instead of failing "database is locked" when it upgrades later.
            "OPTIONS": {
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Permission checks read each process's index of the relation tuples, which asks the change
# log before each check (0) or at most every that many seconds (docs/permissions.md).
REBAC_TUPLE_INDEX = os.environ.get("REBAC_TUPLE_INDEX", "1") != "0"
try:
    REBAC_INDEX_POLL_SECONDS = float(os.environ.get("REBAC_INDEX_POLL_SECONDS", "0"))
except ValueError:
    raise ImproperlyConfigured("REBAC_INDEX_POLL_SECONDS must be a number of seconds") from None

REDIS_URL = os.environ.get("REDIS_URL", "")
# Markets that share one Redis but must never hear each other (tests, staging beside
# production) each get their own prefix, on the channel layer and on the rows bus.
FABRIC_CHANNEL_PREFIX = os.environ.get("FABRIC_CHANNEL_PREFIX") or "asgi"
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            # channels-redis's layer, its send one round trip (fabric_site/redis_layer.py)
            "BACKEND": "fabric_site.redis_layer.FabricRedisChannelLayer",
            # A zone gets a few messages a tick; a lagging reader must not have them
            # dropped at channels-redis's default of 100 queued messages.
            "CONFIG": {
                # channels-redis blocks 5 s in BZPOPMIN; a socket timeout at or under that
                # turns an idle wait into an error (and can drop a popped message)
                "hosts": [{"address": REDIS_URL, "socket_timeout": 30}],
                "capacity": 2000,
                # members renew every 20 s; one that died without leaving (a killed web
                # process) stops receiving group messages after a minute
                "group_expiry": 60,
                "prefix": FABRIC_CHANNEL_PREFIX,
            },
        }
    }
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
    CELERY_TASK_ALWAYS_EAGER = False
else:
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 2000}}
    }
    CELERY_BROKER_URL = "memory://"
    CELERY_RESULT_BACKEND = "cache+memory://"
    CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True

# NPC decisions (docs/npcs.md): an OpenAI-compatible chat endpoint asked for what no
# contributor has room for (empty: none; the zones' own utility decision is the last resort),
# and how long a contributor answering nonsense is banned.
# When a market with spare zones splits a crowded zone and merges it back (docs/fabric.md,
# "Split and merge"): empty means the zone core's own figures.
FABRIC_SPLIT_SLOTS = os.environ.get("FABRIC_SPLIT_SLOTS", "")
FABRIC_MERGE_SLOTS = os.environ.get("FABRIC_MERGE_SLOTS", "")
FABRIC_REPARTITION_DWELL_S = os.environ.get("FABRIC_REPARTITION_DWELL_S", "")

NPC_FALLBACK_URL = os.environ.get("NPC_FALLBACK_URL", "")
NPC_FALLBACK_MODEL = os.environ.get("NPC_FALLBACK_MODEL", "")
NPC_BAN_SECONDS = float(os.environ.get("NPC_BAN_SECONDS", "3600"))
# SHA-256 hex digests of the contributor keys let in, comma-separated (empty: any key of
# 16 characters or more).
NPC_CONTRIBUTOR_KEYS = tuple(
    k.strip() for k in os.environ.get("NPC_CONTRIBUTOR_KEYS", "").split(",") if k.strip()
)

# Market events (docs/events.md): the stream backend, its retention, and how many events
# may wait for one consumer before it is cut off with a position to resume from.
NATS_URL = os.environ.get("NATS_URL", "nats://127.0.0.1:4222")
FABRIC_EVENTS_BACKEND = os.environ.get("FABRIC_EVENTS_BACKEND") or (
    "redis" if REDIS_URL else "memory"
)
if FABRIC_EVENTS_BACKEND not in ("memory", "redis", "nats"):
    raise ImproperlyConfigured(
        f"FABRIC_EVENTS_BACKEND is memory, redis or nats, not {FABRIC_EVENTS_BACKEND!r}"
    )
if FABRIC_EVENTS_BACKEND == "redis" and not REDIS_URL:
    raise ImproperlyConfigured("FABRIC_EVENTS_BACKEND=redis needs REDIS_URL")
FABRIC_EVENTS_MAX_LEN = int(os.environ.get("FABRIC_EVENTS_MAX_LEN") or 100_000)
FABRIC_EVENTS_MAX_AGE_S = float(os.environ.get("FABRIC_EVENTS_MAX_AGE_S") or 24 * 3600)
# how long the outbox keeps an event's row after relaying it (market/events/outbox.py)
FABRIC_OUTBOX_KEEP_S = float(os.environ.get("FABRIC_OUTBOX_KEEP_S") or 3600)
FABRIC_EVENTS_QUEUE = int(os.environ.get("FABRIC_EVENTS_QUEUE") or 1000)
CELERY_BEAT_SCHEDULE = {
    "chunk-collect-garbage": {"task": "chunks.tasks.chunk_collect_garbage", "schedule": 3600.0},
}

# Join tickets remember here that they were used (market/tickets.py): with
# several web processes (REDIS_URL set) they must all see the same memory.
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "fabric",
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


# The join endpoint's limits (market/api.py, docs/protocol.md §1): joins per address,
# joins per visitor key (or resume token), and new visitor keys per address, each a
# rate N/S or "off", counted in the cache above so that every web process shares them.
def _join_limit(name: str) -> Rate | None:
    try:
        return rate_parse(name, os.environ.get(name) or JOIN_LIMIT_DEFAULTS[name])
    except ValueError as error:
        raise ImproperlyConfigured(str(error)) from None


FABRIC_JOINS_PER_ADDRESS = _join_limit("FABRIC_JOINS_PER_ADDRESS")
FABRIC_JOINS_PER_KEY = _join_limit("FABRIC_JOINS_PER_KEY")
FABRIC_NEW_KEYS_PER_ADDRESS = _join_limit("FABRIC_NEW_KEYS_PER_ADDRESS")

# Successful HTTP Basic checks, remembered by each web process on its own (never on Redis).
CACHES["credentials"] = {
    "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
    "LOCATION": "credentials",
    "OPTIONS": {"MAX_ENTRIES": 10_000},
}

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "fabric_site.basic_auth.BoundedBasicAuthentication",
        # Visitors' asset tokens (Authorization: Bearer), from the visitor socket.
        "chunks.visitor_auth.VisitorTokenAuthentication",
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Fabric Market API",
    "DESCRIPTION": "Chunks (content-addressed by BLAKE3), namespaces and booth asset manifests.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
}

# The chunk store: files under CHUNK_STORE_DIR (ab/cd/<hash>, uploads in its tmp/).
CHUNK_STORE_DIR = Path(os.environ.get("CHUNK_STORE_DIR") or DATA_DIR / "chunks")
CHUNK_MAX_BYTES = int(os.environ.get("CHUNK_MAX_BYTES") or 64 * 1024 * 1024)
# Unreferenced chunks younger than this are kept, so uploads in flight are never collected.
CHUNK_GC_GRACE_SECONDS = int(os.environ.get("CHUNK_GC_GRACE_SECONDS") or 3600)
# How often the embedded main job collects garbage (distributed: Celery beat, hourly).
CHUNK_GC_INTERVAL_SECONDS = float(os.environ.get("CHUNK_GC_INTERVAL_SECONDS") or 3600)
# How long a web process may serve a chunk it found readable by the world or by a visitor
# (asset token) without asking the relation engine again (chunks/fastpath.py; 0 asks every
# time). It bounds how long a revoke or a departure takes to stop every web process
# serving the chunk (plus REBAC_INDEX_POLL_SECONDS), counted from when the check that
# made the memory began; the deleting process forgets at once, and does not remember a
# yes from a check that was running when the deletion committed.
CHUNK_READ_CACHE_SECONDS = float(os.environ.get("CHUNK_READ_CACHE_SECONDS") or 2)

# The market's own loggers report at INFO (zones resumed, workers restarted, visitors
# refused) on stderr. Django's warnings and errors (a request that failed with its
# traceback) go there too: by default Django prints them only in debug mode, and mails
# them to ADMINS otherwise, so with debug off a server error would leave no trace.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        **{
            name: {"handlers": ["console"], "level": os.environ.get("FABRIC_LOG_LEVEL", "INFO")}
            for name in ("zones", "market", "chunks", "fabric_site")
        },
        "django": {"handlers": ["console"], "level": "WARNING"},
        "axes": {"handlers": ["console"], "level": "WARNING"},
    },
}
