"""vzpanel settings: everything comes from environment variables (see README).

Development defaults are safe and need nothing: SQLite in WAL mode and a secret key
kept under var/. With PANEL_ENV=production a missing secret is an error.
"""
from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from panel.env import env, envbool, envint

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env("PANEL_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

PRODUCTION = env("PANEL_ENV", "development") == "production"
DEBUG = envbool("PANEL_DEBUG", False)


def _secret_key() -> str:
    key = env("PANEL_SECRET_KEY")
    if key:
        return key
    if PRODUCTION:
        raise ImproperlyConfigured(
            "PANEL_SECRET_KEY (or PANEL_SECRET_KEY_FILE) must be set when PANEL_ENV=production")
    # Development: one random key per checkout, kept readable by root only.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = [h for h in (env("PANEL_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]") or "").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in (env("PANEL_CSRF_TRUSTED_ORIGINS", "") or "").split(",") if o]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "django_filters",
    "django_tables2",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "axes",
    "panel",
    "accounts",
    "tenancy",
    "backups",
    "metrics",
    "network",
    "hosts",
    "tasks",
    "containers",
    "storage",
    "consoles",
]

MIDDLEWARE = [
    "panel.middleware.ProxiedClientAddressMiddleware",  # first: all below see the real address
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "accounts.middleware.AuditContextMiddleware",
    "accounts.middleware.RequireOTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks
]

ROOT_URLCONF = "panel.urls"
WSGI_APPLICATION = "panel.wsgi.application"
ASGI_APPLICATION = "panel.asgi.application"

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
                "accounts.context_processors.nav",
            ],
        },
    },
]

DB_PATH = Path(env("PANEL_DB_PATH", str(VAR_DIR / "panel.sqlite3")))
# PANEL_DATABASE_URL=postgresql://USER:PASSWORD@HOST:PORT/NAME for a panel of several hosts
# (their agents share the database); without it, SQLite under var/.
DATABASE_URL = env("PANEL_DATABASE_URL", "") or ""
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": DB_PATH,
        "OPTIONS": {
            # WAL lets the web server read while the agent writes; IMMEDIATE avoids
            # "database is locked" when two processes upgrade read locks at once.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
        },
        # Kept open between requests and tasks: a new connection costs 6 ms here (journal_mode on
        # connect, and a checkpoint with fsync whenever the last connection to the file closes),
        # which every API request and every task of the agent paid twice.
        "CONN_MAX_AGE": 600,
        # A file, not memory, so the agent started by the tests can share it.
        "TEST": {"NAME": env("PANEL_TEST_DB_PATH", str(VAR_DIR / "test.sqlite3"))},
    }
}
if DATABASE_URL:
    from urllib.parse import unquote, urlparse
    _url = urlparse(DATABASE_URL)
    if _url.scheme not in ("postgres", "postgresql"):
        raise ImproperlyConfigured("PANEL_DATABASE_URL must be a postgresql:// address")
    DATABASES = {"default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _url.path.lstrip("/"),
        "USER": unquote(_url.username or ""),
        "PASSWORD": unquote(_url.password or ""),
        # host may be a unix socket directory, given as ?host=/path
        "HOST": dict(p.split("=", 1) for p in _url.query.split("&") if "=" in p).get("host", _url.hostname or ""),
        "PORT": str(_url.port or ""),
        "CONN_MAX_AGE": 60,
    }}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # refuses locked-out logins before checking the password
    "django.contrib.auth.backends.ModelBackend",
]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
# Login guessing: lock a username+address pair out after 5 failures, for 15 minutes.
AXES_FAILURE_LIMIT = envint("PANEL_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = envint("PANEL_LOGIN_LOCKOUT_MINUTES", 15) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "accounts/locked_out.html"
AXES_VERBOSE = False

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("PANEL_TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# A production install collects them outside the state directory, where nginx serves them (deploy/).
STATIC_ROOT = Path(env("PANEL_STATIC_ROOT", "") or VAR_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

OTP_TOTP_ISSUER = "vzpanel"

# Email: SMTP when PANEL_EMAIL_HOST is set; otherwise messages are printed to the console.
EMAIL_HOST = env("PANEL_EMAIL_HOST", "")
EMAIL_PORT = envint("PANEL_EMAIL_PORT", 25)
EMAIL_HOST_USER = env("PANEL_EMAIL_USER", "") or ""
EMAIL_HOST_PASSWORD = env("PANEL_EMAIL_PASSWORD", "") or ""
EMAIL_USE_TLS = envbool("PANEL_EMAIL_TLS", False)
EMAIL_BACKEND = ("django.core.mail.backends.smtp.EmailBackend" if EMAIL_HOST
                 else "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env("PANEL_EMAIL_FROM", "vzpanel@localhost")
# The address users reach the panel at, for links in emails (password reset, welcome).
PANEL_URL = (env("PANEL_URL", "") or f"http://{env('PANEL_BIND', '127.0.0.1:8000')}").rstrip("/")

# How much a new host may promise to its containers, as multiples of what it has (each host's
# own policy is on its page and in the API: Host.ram_promise, cpu_promise, disk_promise).
# RAM and disk 1.0: a memory limit or a disk size is a ceiling the container may really reach,
# and promising more than the host has ends in the OOM killer or a full filesystem for everyone.
# CPUs: no limit by default. CPU time is shared by weight (cpuunits) and capped per container
# (cpulimit); a container's CPU count is how many cores it may run on at once, not a reservation.
# OpenVZ never refused a container for CPUs (vzcpucheck only reported), and at cores x 4 a
# 2-core host refused a class of ten 1-CPU containers. Set a number to enforce a ratio.
RAM_OVERCOMMIT = float(env("PANEL_RAM_OVERCOMMIT", "1.0"))
CPU_OVERCOMMIT = float(env("PANEL_CPU_OVERCOMMIT", "")) if env("PANEL_CPU_OVERCOMMIT", "") else None
DISK_OVERCOMMIT = float(env("PANEL_DISK_OVERCOMMIT", "1.0"))
# Resource sampling by the agent.
SAMPLE_SECONDS = envint("PANEL_SAMPLE_SECONDS", 10)
METRICS_TOKEN = env("PANEL_METRICS_TOKEN", "") or ""

# Defaults for containers created without a plan.
DEFAULT_LIMITS = {"ram_mb": 512, "swap_mb": 0, "cpus": 1, "disk_mb": 2048}

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
PROXY_CLIENT_ADDRESS_HEADER = ""  # development: clients reach gunicorn directly
if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    # In production the panel sits behind its HTTPS proxy (deploy/nginx/vzpanel.conf), the only
    # client of gunicorn's socket, which sets these two headers itself over whatever a browser sent.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    PROXY_CLIENT_ADDRESS_HEADER = "HTTP_X_REAL_IP"  # for the audit log and login lock-outs
    SECURE_SSL_REDIRECT = True
    # HSTS for a year. A panel normally has a host name of its own, so covering the names below it
    # (and saying it may be preloaded) changes nothing else; set them to no for a panel on a bare domain.
    SECURE_HSTS_SECONDS = envint("PANEL_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("PANEL_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = envbool("PANEL_HSTS_PRELOAD", True)

# Redis: jobs in database 0 of REDIS_URL. The local default is the unix socket of
# the redis-server that `make run` starts under var/ (tasks/redis_server.py), where every
# client logs in. The web process, the scheduler and the CLI are the Redis user REDIS_USER
# (unless REDIS_URL names one) with PANEL_REDIS_PASSWORD(_FILE), by default the password file
# `make run` makes; an agent is its host's user (tasks/queue.py). The administrator's password
# (root only) lets the panel machine's agent keep the hosts' Redis users in step (tasks/redis_acl.py).
REDIS_URL = env("REDIS_URL", f"unix://{VAR_DIR / 'run' / 'redis.sock'}?db=0")
REDIS_USER = env("PANEL_REDIS_USER", "vzpanel-web")
REDIS_PASSWORD = os.environ.get("PANEL_REDIS_PASSWORD", "")
REDIS_PASSWORD_FILE = os.environ.get("PANEL_REDIS_PASSWORD_FILE") or str(VAR_DIR / "redis-web.pass")
REDIS_ADMIN_PASSWORD_FILE = os.environ.get("PANEL_REDIS_ADMIN_PASSWORD_FILE") or str(VAR_DIR / "redis-admin.pass")

# `make run` runs the web server, redis and the scheduler as this unprivileged user (only the
# host agent stays root). Empty: everything runs as the user that started it.
WEB_USER = env("PANEL_WEB_USER", "vzpanel") or ""

# This machine, as a host of the panel (the agent of `make run` serves it).
PANEL_HOST_NAME = env("PANEL_HOST_NAME", socket.gethostname().split(".")[0]) or "localhost"
PANEL_LXCPATH = env("PANEL_LXCPATH", "/var/lib/lxc")
PANEL_TEMPLATE_DIR = env("PANEL_TEMPLATE_DIR", "/var/lib/vz/template/cache")
PANEL_DUMP_DIR = env("PANEL_DUMP_DIR", "/var/lib/vz/dump")
# Browser uploads (archives, templates) stream here: on the backup storage, not next to the database.
UPLOAD_DIR = env("PANEL_UPLOAD_DIR", os.path.join(PANEL_DUMP_DIR, "uploads"))
# OS templates: GnuPG keyring for signed image indexes; the Ubuntu mirror for debootstrap builds.
TEMPLATE_KEYRING = env("PANEL_TEMPLATE_KEYRING", "") or ""
UBUNTU_MIRROR = env("PANEL_UBUNTU_MIRROR", "http://archive.ubuntu.com/ubuntu")
# An agent that has not been heard from for this long is shown as offline.
AGENT_HEARTBEAT_SECONDS = envint("PANEL_AGENT_HEARTBEAT_SECONDS", 5)
AGENT_OFFLINE_AFTER_SECONDS = envint("PANEL_AGENT_OFFLINE_AFTER_SECONDS", 20)
AGENT_RECONCILE_SECONDS = envint("PANEL_AGENT_RECONCILE_SECONDS", 15)
CONTAINER_STOP_TIMEOUT = envint("PANEL_STOP_TIMEOUT", 30)
# The longest a suspend backup may keep a container frozen (its second, incremental copy): past
# it a watchdog outside the agent thaws the container and the backup fails. An agent that dies
# while a container is frozen has it thawed at once. 0: FREEZE_MARGIN seconds past the longest
# frozen window this host has measured (FREEZE_FIRST_DEADLINE before it has measured one).
FREEZE_DEADLINE = envint("PANEL_FREEZE_DEADLINE", 0)
FREEZE_MARGIN = 10
FREEZE_FIRST_DEADLINE = 60
# How long a stopping agent waits for the tasks it runs beside its queue (commands run in
# containers) before it exits; runpanel waits as long for the agent (PANEL_STOP_GRACE too).
AGENT_STOP_GRACE = envint("PANEL_STOP_GRACE", 300)
# Live migration with CRIU (lxc-checkpoint) where `criu check` passes on both hosts. Off by default:
# on Debian 12 (LXC 5.0.2, CRIU 3.17.1) `criu check` passes, but the panel's containers (each in a
# user namespace of its own) could not be restored: a dump needs a network lock that Debian's
# default install has no iptables for, and the restore was refused by LXC (the console) or failed
# inside the user namespace. A failed restore would restart the container from scratch, losing more
# than the freeze-and-copy path, which online migration uses instead (docs/operations.md).
CRIU_LIVE_MIGRATION = envbool("PANEL_CRIU_LIVE_MIGRATION", False)
# The agent proves which host it serves with this token (issued on the host page or by
# `manage.py host_token NAME`); PANEL_HOST_TOKEN_FILE names a file holding it instead.
HOST_TOKEN = env("PANEL_HOST_TOKEN", "") or ""
HOST_TOKEN_FILE = env("PANEL_HOST_TOKEN_FILE", "") or ""
# What the agent keeps on its host: its migration SSH key, checkpoint images, transfer state.
AGENT_DATA_DIR = env("PANEL_AGENT_DATA_DIR", "/var/lib/vzpanel")
# Migration: the sshd host key this host's agent reports (others pin it), and the
# authorized_keys file whose managed block lets other hosts' agents rsync into our lxcpath.
SSH_HOST_KEY = env("PANEL_SSH_HOST_KEY", "/etc/ssh/ssh_host_ed25519_key.pub")
SSH_AUTHORIZED_KEYS = env("PANEL_SSH_AUTHORIZED_KEYS", "/root/.ssh/authorized_keys")
# How long the source waits for the destination's agent to take a step (it may be busy), the
# longest a step may run (0: each step's own default), and rsync's I/O timeout.
MIGRATE_QUEUE_TIMEOUT = envint("PANEL_MIGRATE_QUEUE_TIMEOUT", 60)
MIGRATE_STEP_TIMEOUT = envint("PANEL_MIGRATE_STEP_TIMEOUT", 0)
MIGRATE_IO_TIMEOUT = envint("PANEL_MIGRATE_IO_TIMEOUT", 60)
SCHEDULER_SECONDS = envint("PANEL_SCHEDULER_SECONDS", 60)
# API requests that may wait for a task's end at once (exec with "wait"), across the panel: each
# holds a gunicorn sync worker meanwhile, so by default two of the workers always stay free for
# everyone else; a request past the limit is answered at once, as without "wait".
API_WAITERS = envint("PANEL_API_WAITERS", max(1, envint("PANEL_WEB_WORKERS", 3) - 2))
# Browser consoles (consoles/): a console with no keystroke for this long is closed; a ticket must be
# used within seconds of the Console tab asking for it; at most this many consoles per host at once.
CONSOLE_IDLE_SECONDS = envint("PANEL_CONSOLE_IDLE_MINUTES", 30) * 60
CONSOLE_TICKET_SECONDS = envint("PANEL_CONSOLE_TICKET_SECONDS", 30)
CONSOLE_MAX_SESSIONS = envint("PANEL_CONSOLE_MAX_SESSIONS", 100)
# Where runpanel's WebSocket server (uvicorn) listens, and the port browsers reach it on: in
# development that port of the page's own host; in production none, nginx passes /ws/ to it.
CONSOLE_BIND = env("PANEL_CONSOLE_BIND", "127.0.0.1:8001") or "127.0.0.1:8001"
CONSOLE_BROWSER_PORT = env("PANEL_CONSOLE_BROWSER_PORT", "" if PRODUCTION else CONSOLE_BIND.rpartition(":")[2]) or ""
# The shell commands' server (manage.py cliserver, panel/cliserver.py) listens here; the wrappers
# (panel/cli_client.py, which reads no settings) find it the same way: PANEL_CLI_SOCKET, else under VAR_DIR.
CLI_SOCKET = env("PANEL_CLI_SOCKET", "") or str(VAR_DIR / "cli" / "cli.sock")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.api_auth.ApiTokenAuthentication",
        "accounts.api_auth.VerifiedSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON only: the browsable API's forms list every choice of a field (all tenants, all hosts).
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "panel.schema.PanelAutoSchema",
    "DEFAULT_PAGINATION_CLASS": "panel.pagination.CheckedLimitOffsetPagination",
    "PAGE_SIZE": 100,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "vzpanel API",
    "DESCRIPTION": "Containers, tasks, OS templates and hosts. Long operations answer 202 with the task's URL.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The API also takes form posts, but documents JSON: only JSON can say null, nested lists and objects.
    "PARSER_WHITELIST": ["rest_framework.parsers.JSONParser"],
    # One name per set of choices, wherever a field uses it (no "Status6a9Enum").
    "ENUM_NAME_OVERRIDES": {
        "TaskStatusEnum": "tasks.choices.TaskStatus",
        "ContainerStatusEnum": "containers.choices.ContainerStatus",
        "CompressionEnum": "backups.models.Compression",
    },
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "panel.schema.add_error_components"],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(name)s %(levelname)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("PANEL_LOG_LEVEL", "INFO")},
    "loggers": {"rq.worker": {"level": "WARNING"}},
}
