"""The queue cannot steer the root agent (issue 12, finding 3).

Attackers: the web side (its own Redis credentials: whatever runs with the web user's privileges
has them) and another host (its agent's token, i.e. root on that host). What they put on the
queue of host vzt-host: a real pickled job whose unpickling and whose function would each create
a marker file, a JSON job naming another function, the panel's runner with another host's task,
undecodable data, and runner jobs dressed with callbacks, dependencies and the like. Nothing may
run, the agent must live on and run the next real task, and each refusal must show on the host
page. Then what each Redis user may reach, the redis-server that `make run` starts, and what a
user sees of an unexpected error in a task. No containers are made (no CTIDs used).
"""
from __future__ import annotations

import json
import os
import pwd
import stat
import subprocess
import sys
import zlib

import pytest
import redis
from rq import Queue
from rq.serializers import JSONSerializer

from hosts.models import Host
from tasks.models import Task
from tasks.queue import RUNNER, connect, job_id_for, redis_connection
from tasks.redis_acl import HostAccess, reconcile
from tasks.secrets import stash_secret
from tasks.services import submit_task
from tests.conftest import RUN_DIR, give_token, redis_admin, wait_task, wait_until
from tests.hosts_fixtures import second_host  # noqa: F401

pytestmark = pytest.mark.integration


class Unpickled:
    """Runs `argv` when unpickled: what a pickled job can do before any function is looked up."""

    def __init__(self, argv):
        self.argv = argv

    def __reduce__(self):
        return subprocess.call, (self.argv,)


def marker(name: str):
    path = RUN_DIR / f"queue-marker-{name}"
    path.unlink(missing_ok=True)
    return path


def web() -> redis.Redis:
    """The web side's client, with the web side's own credentials."""
    return redis_connection()


def host_user(host: Host, token: str) -> redis.Redis:
    """A client as that host's agent: its Redis user, its token."""
    client = connect(host.redis_user, token)
    wait_until(lambda: _answers(client), 20, message=f"Redis to accept {host.redis_user}")
    return client


def _answers(client) -> bool:
    try:
        return client.ping()
    except redis.exceptions.AuthenticationError:
        return False


def reconcile_now() -> None:
    """What the panel machine's agent does at each heartbeat."""
    rows = Host.objects.exclude(token_hash="").values_list("name", "pk", "token_hash")
    reconcile(redis_admin(), [HostAccess(*row) for row in rows], all_rules=True)


def crafted_job(client, host: Host, job_id: str, call, **fields) -> None:
    """Put a job hash of our own making on the host's queue, as RQ would lay it out."""
    job = {"data": zlib.compress(json.dumps(call).encode()), "origin": host.queue_name, "status": "queued",
           "created_at": "2026-01-01T00:00:00.000000Z", "description": "crafted", "timeout": "60",
           "success_callback_name": "", "failure_callback_name": "", "stopped_callback_name": "",
           "group_id": "", **fields}
    with client.pipeline() as pipe:
        pipe.hset(f"rq:job:{job_id}", mapping=job)
        pipe.rpush(f"rq:queue:{host.queue_name}", job_id)
        pipe.execute()


def refusals(host: Host) -> dict[str, str]:
    host.refresh_from_db()
    return {r["job_id"]: r["reason"] for r in host.queue_refusals}


def run_noop(host: Host) -> Task:
    """A real task after the attacks: the agent took every job before it (one queue, in order)."""
    return wait_task(submit_task(type="noop", host=host), 60)


# -- what lands on the queue -------------------------------------------------------------------------
def test_queue_attacks_run_nothing_and_are_shown_on_the_host_page(agent, host, second_host, admin_user, client):
    h2, _ = second_host
    attackers = {"web": web(), "host": host_user(h2, give_token(h2.name))}
    markers, expected, foreign = [], {}, []
    for n, (who, conn) in enumerate(attackers.items()):
        base = 990000 + 10 * n
        # (a) a real pickled job: the argument runs a command when unpickled, the function another.
        on_load, on_call = marker(f"{who}-unpickle"), marker(f"{who}-call")
        Queue(host.queue_name, connection=conn).enqueue(  # RQ's default serializer: pickle
            subprocess.call, job_id=job_id_for(host.pk, base + 1),
            args=(["touch", str(on_call)],), kwargs={"stdin": Unpickled(["touch", str(on_load)])})
        expected[job_id_for(host.pk, base + 1)] = "its data is not JSON"
        # (b) JSON naming another function.
        json_call = marker(f"{who}-json")
        Queue(host.queue_name, connection=conn, serializer=JSONSerializer).enqueue(
            "subprocess.call", ["touch", str(json_call)], job_id=job_id_for(host.pk, base + 2))
        expected[job_id_for(host.pk, base + 2)] = "it is not tasks.runner.run_task"
        # (c) the runner, with a task of another host, under a job id of this host.
        other = submit_task(type="noop", host=h2, queue=False)
        foreign.append(other)
        Queue(host.queue_name, connection=conn, serializer=JSONSerializer).enqueue(
            RUNNER, other.pk, job_id=job_id_for(host.pk, other.pk))
        expected[job_id_for(host.pk, other.pk)] = f"task {other.pk} is for host {h2.name}"
        # (d) data that is neither zlib nor JSON.
        crafted_job(conn, host, job_id_for(host.pk, base + 3), None, data=b"\x80\x05garbage\xff")
        expected[job_id_for(host.pk, base + 3)] = "its data is not JSON"
        markers += [on_load, on_call, json_call]

    assert run_noop(host).status == "ok"  # the agent lives on and runs the panel's tasks
    assert [m.name for m in markers if m.exists()] == []
    for other in foreign:
        other.refresh_from_db()
        assert other.status == "queued" and other.started_at is None  # not run here: it is vzt-h2's
    seen = refusals(host)
    for job_id, reason in expected.items():
        assert reason in seen.get(job_id, ""), (job_id, seen)
    client.force_login(admin_user)
    page = client.get(f"/hosts/{host.name}/").content.decode()
    table = page.split('id="queue-refusals"')[1].split("</table>")[0]
    for job_id in expected:
        assert job_id in table
    assert "is for host vzt-h2" in table and "its data is not JSON" in table
    assert "refused job" in agent.log_path.read_text()


def runner(task_id: int) -> list:
    return [RUNNER, None, [task_id], {}]


# (what is changed in a job that calls the runner with its own task, what the refusal says)
DRESSED = {
    "failure callback": ({"failure_callback_name": "subprocess.call"}, "it names callbacks"),
    "success callback": ({"success_callback_name": "os.system"}, "it names callbacks"),
    "stopped callback": ({"stopped_callback_name": "os.system"}, "it names callbacks"),
    "webhook": ({"webhooks": json.dumps([{"url": "http://127.0.0.1:9/"}])}, "unexpected field(s) webhooks"),
    "dependency": ({"dependency_ids": json.dumps(["x"])}, "unexpected field(s) dependency_ids"),
    "meta": ({"meta": json.dumps({"a": 1})}, "unexpected field(s) meta"),
    "retries": ({"retries_left": "3"}, "unexpected field(s) retries_left"),
    "another queue's job": ({"origin": "vzpanel.host.vzt-h2"}, "not from this host's queue"),
    "bad date": ({"started_at": "yesterday"}, "a field does not parse"),
    "bad number": ({"timeout": "soon"}, "a field does not parse"),
    "keyword argument": ({"call": lambda t: [RUNNER, None, [], {"task_id": t}]}, "it is not tasks.runner.run_task"),
    "two arguments": ({"call": lambda t: [RUNNER, None, [t, 1], {}]}, "it is not tasks.runner.run_task"),
    "a string": ({"call": lambda t: [RUNNER, None, [str(t)], {}]}, "it is not tasks.runner.run_task"),
    "a boolean": ({"call": lambda t: [RUNNER, None, [True], {}]}, "it is not tasks.runner.run_task"),
    "a method": ({"call": lambda t: [RUNNER, "x", [t], {}]}, "it is not tasks.runner.run_task"),
    "another task": ({"call": lambda t: runner(t + 1)}, "it is not tasks.runner.run_task"),
    "zlib bomb": ({"data": zlib.compress(b"[" + b" " * (16 << 20) + b"]", 9)}, "unpacks to more than"),
    "huge hash": ({"padding": "x" * (1 << 20)}, "too large"),
}


def test_runner_jobs_dressed_with_more_are_refused(agent, host):
    tasks = {}
    for case, (change, _) in DRESSED.items():
        change = dict(change)
        task = tasks[case] = submit_task(type="noop", host=host, queue=False)  # a real queued task of this host
        crafted_job(web(), host, task.rq_job_id, change.pop("call", runner)(task.pk), **change)
    assert run_noop(host).status == "ok"
    seen = refusals(host)
    wrong = {case: seen.get(tasks[case].rq_job_id) for case, (_, reason) in DRESSED.items()
             if reason not in (seen.get(tasks[case].rq_job_id) or "")}
    assert wrong == {}
    assert not Task.objects.filter(pk__in=[t.pk for t in tasks.values()]).exclude(status="queued").exists()


def test_ids_of_no_task_of_this_host_are_refused_without_being_read(agent_process, host):
    """Also ids RQ could not even decode, and ones slipped into the list of jobs being taken, which
    RQ's housekeeping reads back (the agent's start runs it)."""
    queue_key = f"rq:queue:{host.queue_name}"
    with pytest.raises(redis.exceptions.NoPermissionError):
        web().hset("rq:job:evil", "data", "x")  # the web side may write task job keys only
    foreign = job_id_for(host.pk + 1000, 5)
    web().rpush(queue_key, "evil", foreign, b"\xff\xfe", "x" * 5000)
    web().rpush(f"{queue_key}:intermediate", b"\xc3(", "vzpanel-h1-task-5:execution")
    agent_process.start()
    assert run_noop(host).status == "ok"
    seen = refusals(host)
    assert {seen.get(job_id) for job_id in ("evil", foreign, "\ufffd\ufffd", "x" * 120, "\ufffd(",
                                            "vzpanel-h1-task-5:execution")} == {"not a task job of this host"}
    assert redis_admin().llen(f"{queue_key}:intermediate") == 0


# -- what each Redis user may reach ------------------------------------------------------------------
# Administrative commands: none may be permitted (ACL DRYRUN: nothing is run), and some are tried for real.
ADMIN_COMMANDS = [("FLUSHALL",), ("FLUSHDB",), ("CONFIG", "GET", "*"), ("CONFIG", "SET", "dir", "/tmp"),
                  ("ACL", "SETUSER", "x", "on", "nopass", "+@all", "~*"), ("ACL", "LIST"), ("ACL", "LOAD"),
                  ("KEYS", "*"), ("SCAN", "0"), ("RANDOMKEY",), ("INFO",), ("DEBUG", "SLEEP", "0"),
                  ("MODULE", "LOAD", "/tmp/x.so"), ("EVAL", "return 1", "0"), ("FUNCTION", "FLUSH"),
                  ("SCRIPT", "FLUSH"), ("SAVE",), ("BGSAVE",), ("BGREWRITEAOF",), ("REPLICAOF", "NO", "ONE"),
                  ("CLIENT", "KILL", "TYPE", "normal"), ("CLIENT", "LIST"), ("SWAPDB", "0", "1"),
                  ("SHUTDOWN", "NOSAVE"), ("MONITOR",), ("PUBLISH", "rq:pubsub:x", "shutdown"),
                  ("MIGRATE", "127.0.0.1", "1", "k", "0", "1")]
TRIED = [("FLUSHALL",), ("FLUSHDB",), ("CONFIG", "SET", "dir", "/tmp"), ("KEYS", "*"), ("INFO",),
         ("ACL", "SETUSER", "vzpanel-web", "on", "nopass", "+@all", "~*"), ("EVAL", "return 1", "0")]


def permitted_admin_commands(client, user: str) -> list:
    """What of ADMIN_COMMANDS the user may run (should be nothing), asked of Redis and tried."""
    admin = redis_admin()
    allowed = [command for command in ADMIN_COMMANDS
               if admin.execute_command("ACL", "DRYRUN", user, *command) in (b"OK", "OK")]
    for command in TRIED:
        try:
            client.execute_command(*command)
            allowed.append(command)
        except redis.exceptions.NoPermissionError:
            pass
    return allowed


def test_a_host_user_reaches_only_its_own_queue_and_secrets(host, second_host, redis_conn):
    h2, _ = second_host
    give_token(host.name)
    token_b = give_token(h2.name)
    reconcile_now()
    mine = submit_task(type="noop", host=host)  # on vzt-host's queue (no agent takes it)
    stash_secret(mine.pk, "vzt-host's secret")
    theirs = submit_task(type="noop", host=h2)
    stash_secret(theirs.pk, "vzt-h2's secret")
    b = host_user(h2, token_b)
    queue_a, job_a, secret_a = f"rq:queue:{host.queue_name}", f"rq:job:{mine.rq_job_id}", \
        f"vzpanel:task-secret:{host.name}:{mine.pk}"
    denied = [lambda: b.lrange(queue_a, 0, -1), lambda: b.lpop(queue_a), lambda: b.delete(queue_a),
              lambda: b.lmove(queue_a, f"rq:queue:{h2.queue_name}"), lambda: b.lrem(queue_a, 0, mine.rq_job_id),
              lambda: b.hgetall(job_a), lambda: b.delete(job_a), lambda: b.get(secret_a),
              lambda: b.getdel(secret_a), lambda: b.set(secret_a, "x")]
    for attempt in denied:
        with pytest.raises(redis.exceptions.NoPermissionError):
            attempt()
    assert permitted_admin_commands(b, h2.redis_user) == []
    # Its own queue and secrets are its to use; another host's queue only to add a job (a migration's step).
    assert b.lrange(f"rq:queue:{h2.queue_name}", 0, -1) == [theirs.rq_job_id.encode()]
    assert b.getdel(f"vzpanel:task-secret:{h2.name}:{theirs.pk}") == b"vzt-h2's secret"
    assert b.rpush(queue_a, job_id_for(host.pk, 12345)) == 2
    admin = redis_admin()
    assert admin.lrange(queue_a, 0, 0) == [mine.rq_job_id.encode()]
    assert admin.get(secret_a) == b"vzt-host's secret" and admin.exists(job_a)


def test_a_host_user_reaches_only_its_own_consoles(host, second_host, redis_conn):
    """Console keys (consoles/relay.py) are named by host id: another host's agent can neither read
    a terminal's output or keystrokes, nor type into it, nor take or push its open requests."""
    from consoles import relay
    h2, _ = second_host
    give_token(host.name)
    token_b = give_token(h2.name)
    reconcile_now()
    b, w = host_user(h2, token_b), web()
    w.rpush(relay.open_list(host.pk), "7")
    w.xadd(relay.session_key(host.pk, 7, "in"), relay.data(b"secret keystrokes").fields())
    redis_admin().xadd(relay.session_key(host.pk, 7, "out"), relay.data(b"secret output").fields())
    for kind in ("in", "out", "alive"):
        theirs = relay.session_key(host.pk, 7, kind)
        for attempt in (lambda: b.xread({theirs: "0-0"}), lambda: b.xadd(theirs, {"t": "d", "d": "x"}),
                        lambda: b.delete(theirs), lambda: b.set(theirs, "1")):
            with pytest.raises(redis.exceptions.NoPermissionError):
                attempt()
    for attempt in (lambda: b.blpop([relay.open_list(host.pk)], timeout=1), lambda: b.lpop(relay.open_list(host.pk)),
                    lambda: b.rpush(relay.open_list(host.pk), "8")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            attempt()
    # Its own are its to serve; the web pushes requests and relays, and pops or deletes nothing.
    w.rpush(relay.open_list(h2.pk), "9")
    assert b.blpop([relay.open_list(h2.pk)], timeout=1) == (relay.open_list(h2.pk).encode(), b"9")
    b.xadd(relay.session_key(h2.pk, 9, "out"), relay.data(b"hi").fields())
    assert relay.read_back(w.xread({relay.session_key(h2.pk, 9, "out"): "0-0"}), "0-0")[1] == [relay.data(b"hi")]
    for attempt in (lambda: w.lpop(relay.open_list(host.pk)), lambda: w.delete(relay.session_key(host.pk, 7, "in")),
                    lambda: w.set(relay.session_key(host.pk, 7, "alive"), "1")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            attempt()
    assert redis_admin().llen(relay.open_list(host.pk)) == 1


def test_the_web_user_administers_nothing_and_reads_no_job_or_secret(transactional_db, host, redis_conn):
    task = submit_task(type="noop", host=host)
    stash_secret(task.pk, "a secret")
    w = web()
    assert w.lrange(f"rq:queue:{host.queue_name}", 0, -1) == [task.rq_job_id.encode()]
    assert permitted_admin_commands(w, "vzpanel-web") == []
    for attempt in (lambda: w.hgetall(f"rq:job:{task.rq_job_id}"), lambda: w.lpop(f"rq:queue:{host.queue_name}"),
                    lambda: w.get(f"vzpanel:task-secret:{host.name}:{task.pk}"),
                    lambda: w.delete(f"rq:queue:{host.queue_name}")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            attempt()
    with pytest.raises(redis.exceptions.AuthenticationError):  # nobody gets in without a password
        connect(None, None).ping()


def test_a_new_token_cuts_the_connections_made_with_the_old_one(host, second_host, redis_conn):
    h2, _ = second_host
    old_token = give_token(h2.name)
    reconcile_now()
    old = host_user(h2, old_token)
    new_token = give_token(h2.name)
    reconcile_now()
    with pytest.raises(redis.exceptions.ConnectionError):  # cut, and the old token no longer logs in
        old.ping()
    assert host_user(h2, new_token).ping()
    Host.objects.filter(pk=h2.pk).update(token_hash="")  # revoked: the user goes
    reconcile_now()
    with pytest.raises(redis.exceptions.AuthenticationError):
        connect(h2.redis_user, new_token).ping()


def test_a_remote_agent_gets_its_redis_user_from_the_panels_agent_and_loses_it_when_revoked(
        agent, host, second_host, admin_user, redis_server):
    """vzt-h2's agent cannot administer Redis (as on another machine); vzt-host's agent does it."""
    from hosts import services as hosts
    h2, remote = second_host
    remote.token = give_token(h2.name)
    remote.extra_env.update(PANEL_REDIS_ADMIN_PASSWORD_FILE=str(RUN_DIR / "no-such-file"),
                            REDIS_URL=f"unix://{h2.redis_user}:{remote.token}@{redis_server}?db=0")
    remote.start()
    assert wait_task(submit_task(type="noop", host=h2)).status == "ok"
    hosts.revoke_token(admin_user, h2)
    assert remote.proc.wait(30) != 0
    wait_until(lambda: not _answers(connect(h2.redis_user, remote.token)), 10, message="the user to go")
    assert "Redis user vzpanel-host-vzt-h2 removed" in agent.log_path.read_text()


# -- the redis-server that `make run` starts ---------------------------------------------------------
PROBE = """
import json, sys, redis
sock, var = sys.argv[1], sys.argv[2]
out = {}
def attempt(name, f):
    try:
        f()
        out[name] = "ok"
    except Exception as exc:  # the socket's permissions show as a ConnectionError
        out[name] = "PermissionError" if "Permission denied" in str(exc) else type(exc).__name__
attempt("read web password", lambda: open(var + "/redis-web.pass").read())
attempt("read admin password", lambda: open(var + "/redis-admin.pass").read())
attempt("read redis.conf", lambda: open(var + "/redis/redis.conf").read())
attempt("anonymous", lambda: redis.Redis(unix_socket_path=sock).ping())
password = out["read web password"] == "ok" and open(var + "/redis-web.pass").read().strip()
web = redis.Redis(unix_socket_path=sock, username="vzpanel-web", password=password or "x")
attempt("web ping", web.ping)
attempt("web config", lambda: web.config_set("dir", "/tmp"))
attempt("web acl", lambda: web.execute_command("ACL", "SETUSER", "vzpanel-web", "+@all"))
print(json.dumps(out))
"""


def probe_as(user: str, group: str, sock, var) -> dict:
    res = subprocess.run(["setpriv", f"--reuid={user}", f"--regid={group}", "--clear-groups", "--",
                          sys.executable, "-c", PROBE, str(sock), str(var)],
                         capture_output=True, text=True, timeout=60, cwd="/")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_redis_as_make_run_starts_it(run_dir):
    """tasks.redis_server.prepare is what runpanel runs: here with `nogroup` as the web user's group,
    `nobody` as the web user, `daemon` as any other local user, and a link the web user planted."""
    from tasks.redis_server import prepare
    var = run_dir / "runpanel-var"
    var.mkdir(mode=0o700)
    shadow = run_dir / "stand-in-shadow"
    shadow.write_text("root's own\n")
    shadow.chmod(0o600)
    (var / "redis-web.pass").symlink_to(shadow)  # var is the web user's group's to write
    argv, sock = prepare(var, web_group="nogroup", persist=False)
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(sock.exists, 10, message="redis-server socket")
        status = dict(line.split(":", 1) for line in open(f"/proc/{proc.pid}/status"))
        assert status["Uid"].split()[0] == str(pwd.getpwnam("redis").pw_uid)  # not root, not the web user
        assert shadow.read_text() == "root's own\n" and stat.S_IMODE(shadow.stat().st_mode) == 0o600
        assert shadow.stat().st_gid == 0
        web_pass, admin_pass = os.lstat(var / "redis-web.pass"), os.lstat(var / "redis-admin.pass")
        assert stat.S_ISREG(web_pass.st_mode) and stat.S_IMODE(web_pass.st_mode) == 0o640
        assert (admin_pass.st_uid, stat.S_IMODE(admin_pass.st_mode)) == (0, 0o600)
        assert stat.S_IMODE(sock.stat().st_mode) == 0o770

        web_user = probe_as("nobody", "nogroup", sock, var)
        assert web_user == {"read web password": "ok", "read admin password": "PermissionError",
                            "read redis.conf": "PermissionError", "anonymous": "AuthenticationError",
                            "web ping": "ok", "web config": "NoPermissionError", "web acl": "NoPermissionError"}
        other = probe_as("daemon", "daemon", sock, var)
        assert other["read web password"] == "PermissionError" and other["anonymous"] == "PermissionError"

        admin = redis.Redis(unix_socket_path=str(sock), username="vzpanel-admin",
                            password=(var / "redis-admin.pass").read_text().strip())
        users = {line.split()[1]: line for line in admin.acl_list()}
        assert set(users) == {"default", "vzpanel-admin", "vzpanel-web"} and " off " in users["default"]
    finally:
        proc.terminate()
        proc.wait(10)


# -- what a user sees of a bug in a handler -----------------------------------------------------------
def test_an_unexpected_error_is_one_line_for_the_user_and_a_traceback_in_the_agents_log(agent, host):
    task = wait_task(submit_task(type="template.delete", host=host, params={}))  # no file name: a KeyError
    assert task.status == "failed"
    assert task.error == ("internal error in the agent: KeyError: 'filename'; details in the agent's log")
    assert "Traceback" not in task.log and "Traceback" in agent.log_path.read_text()
