"""Every route in the URL conf, opened by every role: one rule each, so a new route without a rule
fails here. The world: tenant acme (tenant admin `tadmin`; `student` owns container 501, its task,
its backup; `peer` is an acme member without it), tenant other (`outsider`), `loner` in no tenant,
and the global roles admin, operator, auditor.

What a role may not see answers 404 (objects: nothing leaks about them) or 403 (pages that are
not part of the role at all); what it may see answers 200. POSTs by roles that may not act change
nothing. The CLI follows the same rules.
"""
from __future__ import annotations

import re
import subprocess
import sys

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.test import APIClient

from backups.models import Backup
from containers.models import Container, OSTemplate
from tasks.models import Task
from tenancy.models import StudentClass

from ..conftest import BASE_DIR, subprocess_env
from ..tenancy_fixtures import _user

ROLES = ("admin", "operator", "auditor", "tadmin", "student", "peer", "outsider", "loner")
ALL = set(ROLES)
GLOBAL = {"admin", "operator", "auditor"}
MANAGERS = {"admin", "operator"}
PEOPLE = GLOBAL | {"tadmin"}               # oversees people: plans, pools, users, audit
CREATORS = MANAGERS | {"tadmin"}           # may create containers (and so see templates)
SEES_CT = GLOBAL | {"tadmin", "student"}   # container 501, its task and its backup
IN_ACME = SEES_CT | {"peer"}               # tenant acme's page


def page(allowed: set, refused: int = 403, ok: int = 200):
    return lambda who: ok if who in allowed else refused


def obj(allowed: set, ok: int = 200):
    return page(allowed, 404, ok)


def always(status: int):
    return lambda who: status


POST_ONLY = always(405)
# GET status by URL name and role.
RULES = {
    # signed-in basics
    "dashboard": always(200), "account": always(200), "login": always(200), "logout": POST_ONLY,
    "otp-verify": always(302), "2fa-setup": always(200), "2fa-disable": always(302),
    "token-create": POST_ONLY, "token-revoke": POST_ONLY,
    "password_change": always(200), "password_reset": always(200), "password_reset_done": always(200),
    "password_reset_confirm": always(200), "password_reset_complete": always(200), "password-set": always(200),
    # containers
    "container-list": always(200), "container-create": page(CREATORS), "container-detail": obj(SEES_CT),
    "container-series": obj(SEES_CT), "container-beancounters": obj(SEES_CT),
    # the CTID's earlier containers' tasks: seen where the current container or one of its tasks is
    "container-history": obj(SEES_CT),
    # storage pools (administrators, on the host page) and snapshots (the container page's tab)
    "pool-add": POST_ONLY, "pool-default": POST_ONLY, "container-snapshot": POST_ONLY,
    "container-snapshot-action": POST_ONLY,
    "api-ct-snapshots-list": obj(SEES_CT),
    # a snapshot is deleted (DELETE) or switched to (POST), never read alone: GET is 405 for everyone
    "api-ct-snapshots-detail": POST_ONLY, "api-ct-snapshots-switch": POST_ONLY,
    "container-backup-prune": obj(SEES_CT),
    **{name: POST_ONLY for name in ("container-settings", "container-exec", "container-destroy", "container-reset",
                                    "container-migrate", "container-password", "container-sshkey",
                                    "container-action", "container-backup-create", "ct-net-ipadd", "ct-net-ipdel",
                                    "container-console-ticket", "container-bulk",
                                    "ct-net-netif-add", "ct-net-netif-del", "ct-net-dns")},
    # tasks
    "task-list": always(200), "task-detail": obj(SEES_CT), "task-cancel": POST_ONLY,
    # backups
    "backup-list": always(200), "backup-upload": POST_ONLY, "backup-log": obj(SEES_CT),
    # An auditor reads about backups, not the tenants' data in them, and restores nothing.
    "backup-download": lambda who: {"auditor": 403}.get(who, obj(SEES_CT)(who)),
    "backup-restore": lambda who: {"auditor": 403}.get(who, obj(SEES_CT)(who)),
    **{name: POST_ONLY for name in ("backup-verify", "backup-protect", "backup-notes", "backup-delete",
                                    "backup-job-run")},
    "backup-job-list": always(200), "backup-job-create": page(CREATORS), "backup-job-detail": always(404),
    "backup-job-delete": always(404),
    # hosts: infrastructure, the global roles only
    "host-list": page(GLOBAL), "host-add": page({"admin"}), "host-detail": obj(GLOBAL),
    "host-beancounters": obj(GLOBAL), "storage-create": POST_ONLY, "host-action": POST_ONLY,
    "storage-delete": POST_ONLY, "host-bridge-create": POST_ONLY, "metrics": always(404),
    # pools, plans, users, audit: the global roles and tenant admins
    "pool-list": page(PEOPLE), "pool-create": page({"admin"}), "pool-edit": page({"admin"}),
    "plan-list": page(PEOPLE), "plan-create": page({"admin"}), "plan-edit": page({"admin"}),
    "user-list": page(PEOPLE), "user-create": lambda who: 405 if who in PEOPLE else 403,
    "user-active": lambda who: 405 if who in PEOPLE else 403, "audit-list": page(PEOPLE),
    # templates: who creates containers, and the global roles
    "template-list": page(GLOBAL | CREATORS),
    **{name: POST_ONLY for name in ("template-build", "template-download", "template-download-index",
                                    "template-upload", "template-copy", "template-delete",
                                    "template-from-container")},
    # tenants and classes
    "tenant-list": always(200), "tenant-create": page({"admin"}), "tenant-detail": obj(IN_ACME),
    "tenant-quotas": lambda who: 200 if who == "admin" else 404 if who in ("outsider", "loner") else 403,
    "tenant-member-add": POST_ONLY, "tenant-member-create": POST_ONLY, "tenant-member-remove": POST_ONLY,
    "class-create": lambda who: 200 if who in ("admin", "tadmin") else 404 if who in ("outsider", "loner") else 403,
    "class-detail": obj(IN_ACME),  # members see the class with their own containers only
    "class-import": POST_ONLY, "class-bulk": POST_ONLY,
    # the API
    "api-root": always(200), "api-schema": always(200),
    "api-container-list": always(200), "api-container-detail": obj(SEES_CT),
    "api-ct-network-list": obj(SEES_CT),
    "api-task-list": always(200), "api-task-detail": obj(SEES_CT),
    "api-template-list": page(GLOBAL | CREATORS), "api-template-detail": page(GLOBAL | CREATORS),
    "api-host-list": page(GLOBAL), "api-host-detail": obj(GLOBAL), "api-host-bridges-list": obj(GLOBAL),
    "api-tenant-list": always(200), "api-tenant-detail": obj(IN_ACME), "api-tenant-bridges-list": obj(IN_ACME),
    "api-plan-list": page(PEOPLE), "api-plan-detail": page(PEOPLE), "api-pool-list": page(PEOPLE),
    "api-pool-detail": page(PEOPLE),
    "api-audit-list": page(PEOPLE),
    "api-audit-detail": lambda who: 200 if who in ("admin", "auditor") else 404 if who in ("operator", "tadmin")
    else 403,  # the student's login (no tenant): operators and tenant admins see their own and their tenants' only
    "api-user-list": page(PEOPLE),
    "api-user-detail": lambda who: 200 if who in ("admin", "auditor", "tadmin") else 404 if who == "operator"
    else 403,
    "api-backup-list": always(200), "api-backup-detail": obj(SEES_CT),
    "api-backup-download": lambda who: {"auditor": 403}.get(who, obj(SEES_CT)(who)),
    "api-backup-job-list": always(200), "api-backup-job-detail": always(404), "api-backup-job-runs": always(404),
    **{name: POST_ONLY for name in (
        "api-container-backup", "api-container-exec-command", "api-container-migrate", "api-container-reset",
        "api-container-restart", "api-container-sshkey", "api-container-start", "api-container-stop",
        "api-container-mount", "api-container-umount", "api-container-userpasswd", "api-task-cancel",
        "api-template-build", "api-template-download",
        "api-template-copy", "api-host-drain", "api-host-evacuate", "api-host-remove", "api-host-revoke",
        "api-host-ssh", "api-host-token", "api-host-undrain", "api-host-promise", "api-ct-network-dns",
        "api-ct-network-ipadd",
        "api-ct-network-ipdel", "api-ct-network-netif-add", "api-ct-network-netif-del",
        "api-backup-job-run-now", "api-backup-restore", "api-backup-verify", "api-backup-import-archive")},
}
# POST-only routes a member cannot see at all answer 403 before the method is looked at.
API_POST_PAGES = {"api-template-build": GLOBAL | CREATORS, "api-template-download": GLOBAL | CREATORS,
                  "api-template-copy": GLOBAL | CREATORS}


def routes():
    """(pattern, name) of every named route, the Django admin left to its own test."""
    def walk(patterns, prefix=""):
        for p in patterns:
            if isinstance(p, URLResolver):
                yield from walk(p.url_patterns, prefix + str(p.pattern))
            elif isinstance(p, URLPattern) and p.name:
                yield prefix + str(p.pattern), p.name
    return [(pattern, name) for pattern, name in walk(get_resolver().url_patterns)
            if not pattern.startswith("admin/") and "format" not in pattern]


def test_every_route_has_a_rule():
    missing = sorted({name for _, name in routes()} - set(RULES))
    assert missing == [], f"routes without a rule in {__file__}: {missing}"


@pytest.fixture
def world(people, acme, student_ct, admin_user, host, plan, tmp_path):
    from containers.services import start_container
    people = dict(people, admin=admin_user, loner=_user("loner"))
    task = start_container(student_ct, people["student"])
    Container.objects.filter(pk=student_ct.pk).update(lock_task=None)
    (tmp_path / "vzdump-lxc-501-2025_01_02-03_04_05.tar.zst").write_bytes(b"archive")
    (tmp_path / "vzdump-lxc-501-2025_01_02-03_04_05.log").write_text("log")
    backup = Backup.objects.create(ctid=501, container=student_ct, tenant=acme, owner=people["student"], host=host,
                                   storage_path=str(tmp_path), filename="vzdump-lxc-501-2025_01_02-03_04_05.tar.zst",
                                   size=7, sha256="0" * 64)
    StudentClass.objects.create(tenant=acme, slug="cs101", name="CS 101", host=host, ostemplate="x", plan=plan)
    from network.models import IPPool
    pool = IPPool.objects.create(name="acme-net", network="198.51.100.0/24")
    pool.tenants.add(acme)
    from accounts.models import AuditEvent
    event = AuditEvent.objects.create(user=people["student"], username="student", action="login", result="ok")
    kwargs = {"ident": "501", "ctid": "501", "name": host.name, "slug": "acme", "user_id": people["student"].pk,
              "action": "start", "uidb64": "MQ", "token": "set-password"}
    pks = {"task": task.pk, "backup": backup.pk, "template": OSTemplate.objects.filter(host=host).first().pk, "plan": plan.pk, "pool": pool.pk,
           "audit": event.pk, "user": people["student"].pk, "token": 999999, "job": 999999}
    return people, kwargs, pks


PK_OF = {"task": "task", "api-task": "task", "backup-job": "job", "api-backup-job": "job", "backup": "backup",
         "api-backup": "backup", "template": "template", "api-template": "template", "plan": "plan",
         "api-plan": "plan", "pool": "pool", "api-pool": "pool", "api-audit": "audit", "api-user": "user",
         "user": "user", "token": "token", "storage": "job"}


def url_for(pattern: str, name: str, kwargs: dict, pks: dict) -> str:
    args = {}
    for key in re.findall(r"<(?:\w+:)?(\w+)>|\(\?P<(\w+)>", pattern):
        key = key[0] or key[1]
        if key == "pk":
            args[key] = pks[next(v for k, v in sorted(PK_OF.items(), key=lambda kv: -len(kv[0]))
                                 if name.startswith(k))]
        elif key == "slug" and name in ("class-detail", "class-import", "class-bulk"):
            args[key] = "cs101"
        else:
            args[key] = kwargs[key]
    return reverse(name, kwargs=args)


@pytest.mark.parametrize("who", ROLES)
def test_every_route_answers_each_role_by_its_rule(world, who):
    people, kwargs, pks = world
    web, api = _clients(people[who])
    wrong = []
    for pattern, name in routes():
        url = url_for(pattern, name, kwargs, pks)
        status = (api if name.startswith("api-") else web).get(url).status_code
        if name in API_POST_PAGES and who not in API_POST_PAGES[name]:
            expected = 403
        else:
            expected = RULES[name](who)
        if status != expected:
            wrong.append(f"{name} {url}: {status}, expected {expected}")
    assert wrong == [], "\n".join(wrong)


def _clients(user):
    from django.test import Client
    web, api = Client(), APIClient()
    web.force_login(user)
    api.force_authenticate(user)
    return web, api


# -- refused POSTs change nothing ---------------------------------------------------------------------
def snapshot():
    from network.models import IPPool
    from tenancy.models import Membership, Plan, Tenant
    return (list(Task.objects.values_list("pk", "status")), list(Container.objects.values_list("pk", "status", "hostname")),
            list(Backup.objects.values_list("pk", "notes", "protected")), Plan.objects.count(), Tenant.objects.count(),
            Membership.objects.count(), IPPool.objects.count())


ADMIN_POSTS = [("host-add", {"name": "evil"}), ("pool-create", {"name": "evil", "network": "10.0.0.0/24"}),
               ("plan-create", {"name": "evil", "ram_mb": 64, "disk_mb": 512, "cpus": 1}),
               ("tenant-create", {"slug": "evil", "name": "Evil"}), ("user-create", {"username": "evil"}),
               ("host-action", {}), ("storage-create", {"name": "n", "path": "/mnt"}),
               ("host-bridge-create", {"name": "evilbr"}), ("template-build", {"host": "vzt-host"}),
               ("tenant-member-add", {"username": "loner", "role": "admin"})]


@pytest.mark.parametrize("who", ["student", "peer", "outsider", "loner"])
def test_members_posts_to_administrative_routes_change_nothing(world, who):
    people, kwargs, pks = world
    web, _ = _clients(people[who])
    before = snapshot()
    for name, data in ADMIN_POSTS:
        url = url_for(dict((n, p) for p, n in routes())[name], name, kwargs, pks)
        status = web.post(url, data).status_code
        assert status in (403, 404), (name, status)
    assert snapshot() == before


# -- the CLI follows the same rules ------------------------------------------------------------------
CLI = [(["hostctl", "list"], GLOBAL)]


@pytest.mark.parametrize("who", ["admin", "auditor", "tadmin", "student", "peer", "loner"])
def test_the_cli_follows_the_same_rules(transactional_db, world, who):
    people, _, _ = world
    env = subprocess_env()
    for argv, allowed in CLI:
        res = subprocess.run([sys.executable, str(BASE_DIR / "manage.py"), argv[0], "--user", people[who].username,
                              *argv[1:]],
                             cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120)
        assert (res.returncode == 0) == (who in allowed), (argv, who, res.stdout, res.stderr)
        assert "Traceback" not in res.stderr
    res = subprocess.run([sys.executable, str(BASE_DIR / "manage.py"), "vzlist", "--user", people[who].username, "-a"],
                         cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120)
    assert ("501" in res.stdout) == (who in SEES_CT)
    # vzctl status answers as OpenVZ's does; a container one may not see is, to them, one that
    # does not exist (the same words, nothing leaked).
    res = subprocess.run([sys.executable, str(BASE_DIR / "manage.py"), "vzctl", "--user", people[who].username,
                          "status", "501"], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120)
    assert res.stdout.startswith("CTID 501 exist") == (who in SEES_CT), (who, res.stdout, res.stderr)
    assert (res.stdout == "CTID 501 deleted unmounted down\n") == (who not in SEES_CT)
