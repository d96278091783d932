"""Test settings: everything the tests make lives in one run directory under /tmp.

The environment is set before panel.settings is read, so the host agent that the
tests start as a subprocess (with the same environment) sees the same places.
"""
import os
import tempfile

RUN_DIR = os.environ.get("VZPANEL_TEST_RUN_DIR") or tempfile.mkdtemp(prefix="vzpt-")
os.environ["VZPANEL_TEST_RUN_DIR"] = RUN_DIR
os.environ.setdefault("PANEL_VAR_DIR", RUN_DIR)
os.environ.setdefault("PANEL_LXCPATH", os.path.join(RUN_DIR, "lxc"))
os.environ.setdefault("PANEL_TEMPLATE_DIR", os.path.join(RUN_DIR, "templates"))
os.environ.setdefault("PANEL_DUMP_DIR", os.path.join(RUN_DIR, "dump"))
os.environ.setdefault("PANEL_HOST_NAME", "vzt-host")
os.environ.setdefault("REDIS_URL", f"unix://{RUN_DIR}/run/redis.sock?db=0")  # as under `make run`
os.environ.setdefault("PANEL_AGENT_HEARTBEAT_SECONDS", "1")
os.environ.setdefault("PANEL_AGENT_RECONCILE_SECONDS", "2")
os.environ.setdefault("PANEL_AGENT_OFFLINE_AFTER_SECONDS", "5")
os.environ.setdefault("PANEL_STOP_TIMEOUT", "10")
os.environ.setdefault("PANEL_SAMPLE_SECONDS", "1")
os.environ.setdefault("PANEL_AGENT_DATA_DIR", os.path.join(RUN_DIR, "agent-data"))
os.environ.setdefault("PANEL_MIGRATE_QUEUE_TIMEOUT", "8")

from panel.settings import *  # noqa: E402,F401,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast; tests only
# Serve static files straight from static/ (no collectstatic into the run directory).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
os.makedirs(STATIC_ROOT, exist_ok=True)  # noqa: F405
