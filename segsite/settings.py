"""Settings, read from environment variables (see README, "Configuration").

With no configuration at all the project runs for development: SQLite, local media and
models folders, the local Redis. Production sets DATABASE_URL, SECRET_KEY and friends.
"""

import os
from pathlib import Path

import dj_database_url
from corsheaders.defaults import default_headers
from django.core.exceptions import ImproperlyConfigured

from segsite.env import (
    env_bool,
    env_host_port_list,
    env_int,
    env_int_list,
    env_list,
    env_origin_list,
    env_path,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", False)
# Production passes SECRET_KEY. A checkout has the random one `make setup` wrote, so that
# the README's commands (`manage.py issue_token alice`) work in a fresh shell as written.
# Images never hold that file (.dockerignore), so a container without SECRET_KEY still fails;
# SECRET_KEY_FILE may name another (a Docker or Kubernetes secret's file).
SECRET_KEY_FILE = env_path("SECRET_KEY_FILE", BASE_DIR / ".secret_key")
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY and SECRET_KEY_FILE.is_file():
    SECRET_KEY = SECRET_KEY_FILE.read_text().strip()
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            f"SECRET_KEY is not set, and there is no {SECRET_KEY_FILE} (`make setup` writes one). "
            "Set it to a long random string, or DEBUG=true for development."
        )
    SECRET_KEY = "insecure-development-key-only-used-when-DEBUG-is-true"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

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
    "drf_spectacular_sidecar",  # Swagger UI's files, served by us: no CDN needed
    "corsheaders",
    "jobs",
    "workers",
    "tryit",  # the page at / to try the service in a browser
]

MIDDLEWARE = [
    "jobs.ops.health.ProbeMiddleware",  # probes skip the host check (see there)
    # Before anything that answers by itself (the status read cache): every answer to an
    # allowed origin carries its CORS headers, preflights are answered here.
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "jobs.api.readcache.ReadCacheMiddleware",  # cached status reads skip the rest
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "segsite.urls"
WSGI_APPLICATION = "segsite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60, minimum=0),
        conn_health_checks=True,
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
_sqlite = DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3" and DATABASES["default"]["NAME"]
if _sqlite and str(_sqlite) != ":memory:":
    # SQLite creates its file with the umask's mode, usually world-readable: tokens and
    # webhook secrets live in it. Made first, readable by its owner only.
    _sqlite = Path(_sqlite)
    if _sqlite.parent.is_dir() and not _sqlite.exists():
        os.close(os.open(_sqlite, os.O_CREAT | os.O_WRONLY, 0o600))

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
# Filled by `manage.py collectstatic` (make setup); WhiteNoise serves it from gunicorn.
STATIC_ROOT = env_path("STATIC_ROOT", BASE_DIR / "staticfiles")

# Uploads and results. Files are never served from MEDIA_URL: the API serves them after an
# ownership or signature check (jobs/api/files.py), so MEDIA_ROOT must not be web-exposed.
MEDIA_ROOT = env_path("MEDIA_ROOT", BASE_DIR / "media")
# Where inputs and outputs live: `local` (MEDIA_ROOT, one host) or `s3`, an S3-compatible
# bucket through django-storages, which web and workers on different hosts share.
MEDIA_STORAGE = env_str("MEDIA_STORAGE", "local")
if MEDIA_STORAGE not in ("local", "s3"):
    raise ImproperlyConfigured(f"MEDIA_STORAGE={MEDIA_STORAGE!r} is neither local nor s3")
# A download from the bucket: `stream` it through the web process, or `redirect` the client
# to a presigned URL of the object, valid MEDIA_REDIRECT_SECONDS (the bucket must then be
# reachable by clients).
MEDIA_DOWNLOADS = env_str("MEDIA_DOWNLOADS", "stream")
if MEDIA_DOWNLOADS not in ("stream", "redirect") or (MEDIA_DOWNLOADS == "redirect" and MEDIA_STORAGE != "s3"):
    raise ImproperlyConfigured(
        f"MEDIA_DOWNLOADS={MEDIA_DOWNLOADS!r}: stream, or redirect with MEDIA_STORAGE=s3"
    )
MEDIA_REDIRECT_SECONDS = env_int("MEDIA_REDIRECT_SECONDS", 300, minimum=1)
# Uploads and results readable by the service's own user only (web and workers run as one).
FILE_UPLOAD_PERMISSIONS = 0o600
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o700
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
if MEDIA_STORAGE == "s3":
    if not env_str("AWS_STORAGE_BUCKET_NAME"):
        raise ImproperlyConfigured(
            "MEDIA_STORAGE=s3 needs AWS_STORAGE_BUCKET_NAME (and the endpoint and keys)"
        )
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env_str("AWS_STORAGE_BUCKET_NAME"),
            "endpoint_url": env_str("AWS_S3_ENDPOINT_URL") or None,
            "access_key": env_str("AWS_ACCESS_KEY_ID") or None,
            "secret_key": env_str("AWS_SECRET_ACCESS_KEY") or None,
            "region_name": env_str("AWS_S3_REGION_NAME") or None,
            # Path-style addressing: SeaweedFS and MinIO serve buckets under one host name.
            "addressing_style": env_str("AWS_S3_ADDRESSING_STYLE", "path"),
            "signature_version": "s3v4",
            "querystring_expire": MEDIA_REDIRECT_SECONDS,
            "file_overwrite": True,  # a retried attempt replaces what an earlier one wrote
            "default_acl": None,  # the bucket's own policy: private
        },
    }

# --- Segmentation -------------------------------------------------------------------------
SEGMENT_MODELS_DIR = env_path("SEGMENT_MODELS_DIR", BASE_DIR / "models")
# Models a worker loads; empty means every model on its queues whose weights are installed.
WORKER_MODELS = env_list("WORKER_MODELS", [])
# Uploads over this many bytes get 413 before their body is parsed.
MAX_UPLOAD_BYTES = env_int("MAX_UPLOAD_BYTES", 20 * 1024 * 1024, minimum=1024)
# Django refuses non-file bodies above this; a JSON body carries an image in base64, a third
# larger and more with line breaks (jobs/uploads.py answers 413 past it before reading).
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_UPLOAD_BYTES * 3 // 2 + 64 * 1024
# Images over this many pixels get 413 before they are decoded (decompression bombs).
MAX_IMAGE_PIXELS = env_int("MAX_IMAGE_PIXELS", 40_000_000, minimum=1)
# A job that kills its worker this many times fails with worker_lost instead of looping.
JOB_MAX_ATTEMPTS = env_int("JOB_MAX_ATTEMPTS", 3, minimum=1)
# Seconds one job may run in a worker before it fails with `timeout`; the pool process is
# killed 30 s later if it ignores that. The broker's visibility timeout is set above both.
JOB_TIME_LIMIT = env_int("JOB_TIME_LIMIT", 300, minimum=10)
# A job queued this many seconds since its message was sent is sent again (the message
# may have been lost with Redis); duplicates are harmless (Job.claim).
JOB_REQUEUE_AFTER = env_int("JOB_REQUEUE_AFTER", 900, minimum=60)
# Seconds between beat's reaper passes (jobs/reaper.py): how soon after a broker that came
# back empty, or a worker lost for good, its jobs are sent again.
REAP_INTERVAL = env_int("REAP_INTERVAL", 60, minimum=1)
# /metrics wants `Authorization: Bearer <METRICS_TOKEN>`; unset, it is closed unless DEBUG.
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
# Finished jobs and their files are deleted this many days after they were created
# (`manage.py prune_jobs`, daily by beat); 0 keeps them for ever.
JOB_RETENTION_DAYS = env_int("JOB_RETENTION_DAYS", 7, minimum=0)
# Backpressure (jobs/backpressure.py): submits past these get 429 with Retry-After.
MAX_QUEUED_JOBS_PER_USER = env_int("MAX_QUEUED_JOBS_PER_USER", 100, minimum=1)
MAX_QUEUED_JOBS = env_int("MAX_QUEUED_JOBS", 5000, minimum=1)
# Each anonymous compatible client's, by address (COMPAT_ALLOW_ANONYMOUS).
MAX_QUEUED_JOBS_PER_ADDRESS = env_int("MAX_QUEUED_JOBS_PER_ADDRESS", 10, minimum=1)
# Images one POST /api/v1/batches/ may carry. At most 99: Django refuses a request of more
# than DATA_UPLOAD_MAX_NUMBER_FILES (100) files, and a cutout's background is one more.
MAX_BATCH_SIZE = env_int("MAX_BATCH_SIZE", 20, minimum=1, maximum=99)
# Interpreter threads per worker process; 0 means the cores the process may use.
INFERENCE_THREADS = env_int("INFERENCE_THREADS", 0, minimum=0)
# Dynamic batching, in a worker started with --pool threads (a GPU worker): up to BATCH_MAX
# photos of one model that arrive within BATCH_WAIT_MS of the first run as one batch. Each
# job is still claimed, recorded and recovered on its own (workers/batching.py).
BATCH_MAX = env_int("BATCH_MAX", 1, minimum=1, maximum=64)
BATCH_WAIT_MS = env_int("BATCH_WAIT_MS", 10, minimum=0, maximum=1000)
# A photo whose long side is over this is decoded at 1/2, 1/4... of its size for inference
# and drawing (JPEG's own scaled decode), never below the model's input size: its overlay
# is at most this long, while masks, instances and summaries stay at the photo's full size.
# A cutout always uses every pixel, and a model that sizes the photo itself (Mask R-CNN,
# fit "native") gets it whole. 0: decode everything at full size.
OVERLAY_MAX_SIDE = env_int("OVERLAY_MAX_SIDE", 2048, minimum=0)
# Lifetime of the signed file URLs in a job's result.
FILE_URL_MAX_AGE = env_int("FILE_URL_MAX_AGE", 3600, minimum=60)
# Where clients reach this API. Absolute URLs built outside a request (webhook payloads)
# start with it; a request's own host is used when there is one.
PUBLIC_BASE_URL = env_str("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
# Redis for waiting on results (`Prefer: wait`): workers publish each finished job there.
REDIS_URL = env_str("REDIS_URL", env_str("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"))
# Django's cache, where the request-rate limits count: on Redis, so that every web process
# of every host counts against the same limit. A short socket timeout: when Redis is away,
# the limits are not enforced (jobs/api/throttling.py) rather than every request waiting.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": env_str("CACHE_URL", REDIS_URL),
        "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "segment"),
        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
    }
}
# The longest a `Prefer: wait=N` request may hold its connection.
MAX_WAIT_SECONDS = 60
# Requests one web process lets wait for a job at once (`Prefer: wait` and the compatible
# MAX and iOS endpoints alike); past it `Prefer: wait` is answered at once (202) and the
# compatible endpoints 503. Keep it below WEB_THREADS so that status reads always get one.
MAX_WAITING_REQUESTS = env_int("MAX_WAITING_REQUESTS", 4, minimum=1)
# How long a job's JSON stays cached for status reads after a full read (jobs/api/readcache.py);
# 0 turns the cache off. At most 300: the cached JSON carries signed file URLs, which must
# stay well within FILE_URL_MAX_AGE.
STATUS_CACHE_SECONDS = env_int("STATUS_CACHE_SECONDS", 10, minimum=0, maximum=300)

# --- Compatible APIs (MAX Image Segmenter, the PixelLib/Flask iOS API) ---------------------
# Their clients send no token: let them in as one dedicated user when true (see README).
COMPAT_ALLOW_ANONYMOUS = env_bool("COMPAT_ALLOW_ANONYMOUS", False)
COMPAT_ANONYMOUS_USERNAME = "compat-anonymous"
# Seconds a synchronous compatible request waits for its job before answering 202 with it.
COMPAT_TIMEOUT = env_int("COMPAT_TIMEOUT", 60, minimum=1)
# MAX's MODEL_TYPE: `mobile` (the light DeepLab) or `full` (DeepLabV3+ Xception, if installed).
MAX_MODEL_TYPE = env_str("MAX_MODEL_TYPE", "mobile")
if MAX_MODEL_TYPE not in ("mobile", "full"):
    raise ImproperlyConfigured(f"MAX_MODEL_TYPE={MAX_MODEL_TYPE!r} is neither mobile nor full")
# MAX's IMAGE_SIZE: seg_map is the class map of the image resized to this longest side.
MAX_IMAGE_SIZE = env_int("MAX_IMAGE_SIZE", 513, minimum=16)
if MAX_IMAGE_SIZE > 1024:
    raise ImproperlyConfigured(f"MAX_IMAGE_SIZE={MAX_IMAGE_SIZE} is above its maximum 1024")

# --- Webhooks -----------------------------------------------------------------------------
# Ports a webhook URL may name (jobs/webhooks/addresses.py): a public host's other ports are
# its SSH, database and admin, never a receiver's.
WEBHOOK_ALLOWED_PORTS = env_int_list("WEBHOOK_ALLOWED_PORTS", [80, 443], minimum=1, maximum=65535)
# Exemptions, `host:port` each (a local receiver in development and tests): that port of that
# host is exempt from the port rule and may resolve to a loopback, private, link-local or
# reserved address. Exact host names or IPs; an entry exempts only its own port.
WEBHOOK_ALLOWED_HOSTS = env_host_port_list("WEBHOOK_ALLOWED_HOSTS")
# Seconds a DNS lookup of a webhook or image URL may take (at submit it holds a web thread):
# past it the URL is refused at submit, and a delivery is retried later.
WEBHOOK_DNS_TIMEOUT = env_int("WEBHOOK_DNS_TIMEOUT", 2, minimum=1)
# Attempts of one user's deliveries under way at once (jobs/webhooks/outbox.py): the rest wait
# behind them, never everyone's, so that one user's receiver that never answers holds this
# many of the io worker's IO_THREADS, not all of them. Keep it well below IO_THREADS.
WEBHOOK_CONCURRENCY_PER_USER = env_int("WEBHOOK_CONCURRENCY_PER_USER", 2, minimum=1)

# Image URLs (`image_url`, remove.bg's and rembg's URL inputs), fetched by the worker under
# the webhooks' address rules (workers/fetching.py): public addresses only, unless listed here.
IMAGE_URL_ALLOWED_HOSTS = [host.lower() for host in env_list("IMAGE_URL_ALLOWED_HOSTS", [])]
IMAGE_URL_MAX_BYTES = env_int("IMAGE_URL_MAX_BYTES", MAX_UPLOAD_BYTES, minimum=1024)
IMAGE_URL_TIMEOUT = env_int("IMAGE_URL_TIMEOUT", 20, minimum=1)
IMAGE_URL_MAX_REDIRECTS = env_int("IMAGE_URL_MAX_REDIRECTS", 3, minimum=0)
# Seconds one delivery attempt may take in all, connecting and reading included.
WEBHOOK_TIMEOUT = env_int("WEBHOOK_TIMEOUT", 10, minimum=1)
# Delays before each retry, in seconds: the Standard Webhooks schedule (5 s, 5 min, 30 min,
# 2 h, 5 h, 10 h, 10 h), about 28 hours in all. Only network errors, timeouts, redirects,
# 429 and 5xx are retried; other 4xx mean the receiver refused the message.
WEBHOOK_RETRY_DELAYS = env_int_list(
    "WEBHOOK_RETRY_DELAYS", [5, 300, 1800, 7200, 18000, 36000, 36000], minimum=0
)
# After a secret rotation, deliveries carry a signature with the old secret too, this long.
WEBHOOK_SECRET_GRACE = env_int("WEBHOOK_SECRET_GRACE", 24 * 3600, minimum=0)

# --- Celery -------------------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
# Clients poll the Job row, never Celery's result backend, so results are not stored.
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# acks_late + reject_on_worker_lost: a message is only removed once its job is recorded, so a
# killed worker's job is delivered again; Job.claim() makes that redelivery harmless.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = JOB_TIME_LIMIT
CELERY_TASK_TIME_LIMIT = JOB_TIME_LIMIT + 30
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Redis re-delivers an unacknowledged message after this many seconds; it must exceed the
# longest job or a slow job would be handed to a second worker while the first still runs.
# It is also what makes a redelivered message mean "the earlier attempt is dead" (Job.claim).
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": JOB_TIME_LIMIT * 4}
# A submit must not hang when Redis is down: give up quickly and answer 503.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Celery's Django fixup closes every database connection before and after each task unless
# this is set: a new PostgreSQL backend per job, about 10 ms of CPU on each side. With it
# the fixup closes them only every this many tasks, and segsite/celery.py applies Django's
# own rule around each task instead, as around a request: DB_CONN_MAX_AGE, health checks.
CELERY_DB_REUSE_MAX = 1000
# Task events, which Flower shows (docker-compose.yml): each task's sending, start and end.
CELERY_WORKER_SEND_TASK_EVENTS = CELERY_TASK_SEND_SENT_EVENT = env_bool("CELERY_TASK_EVENTS", True)
# Webhook deliveries run on their own queue and worker (`--queues webhooks`), never in a
# model worker: a slow receiver must not hold a model.
WEBHOOK_QUEUE = "webhooks"
# Everything beat schedules runs on a queue and worker of its own (`--queues housekeeping`),
# so that no backlog of deliveries or jobs delays the reaper: a pass that waited past its
# `expires` would be dropped unrun. The sweep re-sends deliveries whose retry is too far off
# for a countdown (jobs/webhooks/outbox.py) or whose message was lost.
HOUSEKEEPING_QUEUE = "housekeeping"
CELERY_BEAT_SCHEDULE = {
    "reap-orphaned-jobs": {
        "task": "jobs.tasks.reap_jobs",
        "schedule": float(REAP_INTERVAL),
        "options": {"queue": HOUSEKEEPING_QUEUE, "expires": REAP_INTERVAL},
    },
    "prune-old-jobs": {
        "task": "jobs.tasks.prune_jobs",
        "schedule": 3600.0,
        "options": {"queue": HOUSEKEEPING_QUEUE, "expires": 3600},
    },
    "dispatch-due-webhooks": {
        "task": "jobs.tasks.dispatch_webhooks",
        "schedule": 30.0,
        "options": {"queue": HOUSEKEEPING_QUEUE, "expires": 30},
    },
}

# --- Behind reverse proxies and TLS ----------------------------------------------------
# How many reverse proxies (nginx, a load balancer) stand in front of the web process. The
# client's address is then the one the outermost of them appended to X-Forwarded-For, and
# anything a client wrote there itself is ignored (throttles key on it); their
# X-Forwarded-Proto says whether the client spoke HTTPS, so URLs and Location headers say
# https. With 0 (no proxy) both headers are the client's own words and are never trusted.
TRUSTED_PROXIES = env_int("TRUSTED_PROXIES", 0, minimum=0)
if TRUSTED_PROXIES:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
# The admin's session and CSRF cookies only over HTTPS.
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)

# --- Browsers on other origins (django-cors-headers) ---------------------------------------
# Origins whose pages may call the API with a token, e.g. https://app.example.com (scheme,
# host and port, comma-separated); none by default. Tokens travel in the Authorization
# header, never in cookies, so no credentials mode is needed. File downloads (signed URLs)
# carry the headers too, so a canvas can read a mask's pixels. The admin is left out.
CORS_ALLOWED_ORIGINS = env_origin_list("CORS_ALLOWED_ORIGINS")
CORS_URLS_REGEX = r"^/(?!admin/)"
CORS_ALLOW_HEADERS = (*default_headers, "idempotency-key", "prefer")
CORS_EXPOSE_HEADERS = ["Location", "Retry-After", "Preference-Applied"]
CORS_PREFLIGHT_MAX_AGE = 3600

# --- REST framework -----------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.TokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
        "jobs.api.parsers.JSONParser",
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "jobs.api.pagination.JobPagination",
    "EXCEPTION_HANDLER": "jobs.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Request rates per user (token) and per address (no token): 429 with Retry-After.
    # Counted in the default cache (CACHES: Redis, shared by every web process).
    "DEFAULT_THROTTLE_CLASSES": [
        "jobs.api.throttling.TokenRateThrottle",
        "jobs.api.throttling.AddressRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "user": env_str("THROTTLE_USER_RATE", "1200/min"),
        "anon": env_str("THROTTLE_ANON_RATE", "300/min"),
    },
    # A client's address for the per-address throttle: REMOTE_ADDR, or past TRUSTED_PROXIES
    # the address they vouch for. DRF's default (None) would take the whole client-written
    # X-Forwarded-For, so that every made-up value was a fresh, unthrottled address.
    "NUM_PROXIES": TRUSTED_PROXIES,
}

# OpenAPI 3 at /api/schema/, Swagger UI at /api/docs/ (see jobs/openapi.py).
SPECTACULAR_SETTINGS = {
    "TITLE": "segment-backend",
    "DESCRIPTION": (
        "Image segmentation jobs: upload an image, get a job, poll it, wait for it or receive "
        "a signed webhook, and download its mask and overlay. Also MAX Image Segmenter's and "
        "the PixelLib/Flask iOS API's protocols. Every error is JSON with a stable code."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "JobStatus": "jobs.models.Job.Status",
        "JobTask": "core.specs.JOB_TASKS",
        "ModelTask": "core.specs.TASKS",
        "WebhookEvent": "jobs.models.WEBHOOK_EVENTS",
        "DeliveryEvent": "jobs.models.DELIVERY_EVENTS",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "jobs.api.openapi.add_common_responses",
    ],
    # The compatible endpoints' anonymous access is an operator's switch, not a scheme.
    "AUTHENTICATION_WHITELIST": ["rest_framework.authentication.TokenAuthentication"],
}

# One line per event. LOG_FORMAT=json writes each as a JSON object for a log shipper; either
# way a line logged while a job runs carries its id (core/joblog.py).
LOG_FORMAT = env_str("LOG_FORMAT", "plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r}: use plain or json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"job": {"()": "core.joblog.JobContextFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(job_tag)s%(message)s"},
        "json": {
            "()": "core.joblog.JobJsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(job_id)s %(message)s",
            "datefmt": "%Y-%m-%dT%H:%M:%S%z",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["job"]}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
