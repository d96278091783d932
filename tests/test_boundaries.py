"""The web process never loads the code that runs host commands."""
import subprocess
import sys
from pathlib import Path


def test_web_process_does_not_import_host_facing_code():
    code = (
        "import django, sys; django.setup(); "
        "from panel.wsgi import application; import panel.urls; import panel.asgi; "
        "from django.urls import resolve; resolve('/'); "
        "bad = [m for m in sys.modules if m.startswith('containers.engine.lxc') or m in "
        "('containers.jobs', 'hosts.agent', 'tasks.runner', 'subprocess_tee', 'containers.migration', "
        "'containers.engine.transfer', 'containers.engine.commands', 'consoles.agent', "
        "'containers.engine.terminal')]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent).stdout
    assert out.strip() == "[]"


def test_no_shell_true_anywhere():
    root = Path(__file__).resolve().parent.parent
    offenders = [str(p) for d in ("panel", "containers", "hosts", "tasks", "accounts", "consoles")
                 for p in (root / d).rglob("*.py") if "shell=True" in p.read_text()]
    assert offenders == []


def test_no_column_is_named_like_a_postgresql_system_column():
    """A model field called ctid (the OpenVZ word) must store under another column name: "ctid",
    "xmin", "oid" and the others are PostgreSQL's own, and every test fails there otherwise."""
    from django.apps import apps
    system = {"ctid", "oid", "tableoid", "xmin", "xmax", "cmin", "cmax"}
    clashes = [f"{model._meta.label}.{field.name}" for model in apps.get_models()
               for field in model._meta.concrete_fields if field.column in system]
    assert clashes == []
