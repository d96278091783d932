"""What each Redis user of the panel may do, and keeping the host users in step with the Host rows.

- `vzpanel-admin`: everything; its password is readable by root only (var/redis-admin.pass, or
  PANEL_REDIS_ADMIN_PASSWORD_FILE). Only the agents that hold it (the panel machine's) administer ACLs.
- `vzpanel-web` (web process, scheduler, CLI): puts jobs on any host's queue and removes them
  (append and remove only: it cannot read jobs or pop queues), stashes task secrets (write only),
  takes the scheduler's lock, lists queued job ids, takes and gives back a place among the
  requests waiting for a task's end.
- `vzpanel-host-NAME` (that host's agent; password: its token): everything RQ's worker needs on its
  own queue, its own jobs (ids `vzpanel-h<host id>-task-<task id>`), its worker and its own task
  secrets; on other hosts' queues only what putting a child task there takes (RPUSH, HSET, SADD),
  as a migration's source does. It cannot read, pop or delete another host's queue or jobs, nor
  read another host's secrets.
- Browser consoles (consoles/relay.py): a host's user alone reaches its host's console keys
  (`vzpanel:console:h<host id>:*`: pops session ids, reads keystrokes, writes output, the
  output of its vzctl exec tasks and the end of its tasks); the web user (and the CLI) pushes
  session ids, adds to and reads the streams (a cancel announces its task's end), and reads
  nothing else there.
No user but the administrator gets an administrative command (ACL, CONFIG, DEBUG, MODULE, FLUSH*,
KEYS, SCAN, INFO, SHUTDOWN...): every user below gets a list of commands, never a category.
The commands are what RQ 2 was seen to send (MONITOR) when it enqueues, works, fails and cancels.
"""
from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass

from redis import Redis

from .queue import SCHEDULER_LOCK_KEY, WAITERS_KEY, connect, job_prefix

ADMIN_USER = "vzpanel-admin"
WEB_USER = "vzpanel-web"
HOST_USER_PREFIX = "vzpanel-host-"
QUEUE_PREFIX = "rq:queue:vzpanel.host."
ALL_JOBS = "rq:job:vzpanel-h*"
CONSOLE_PREFIX = "vzpanel:console:"

# A connection and a transaction. (AUTH and HELLO need no permission.)
_SESSION = ["+ping", "+select", "+client|setname", "+client|getname", "+multi", "+exec", "+discard",
            "+watch", "+unwatch"]
# What RQ's worker does with its own queue, registries, jobs, results and worker hash.
_WORKER = ["+lmove", "+blmove", "+lrange", "+llen", "+lrem", "+rpush",
           "+hset", "+hget", "+hmget", "+hgetall", "+hdel", "+hexists", "+hlen", "+hincrby", "+hincrbyfloat",
           "+exists", "+expire", "+persist", "+del", "+type", "+ttl",
           "+sadd", "+srem", "+smembers", "+sismember", "+scard",
           "+zadd", "+zrem", "+zrange", "+zrangebyscore", "+zremrangebyscore", "+zcard", "+zscore",
           "+xadd", "+xrange", "+xrevrange", "+set", "+get", "+getdel",
           "+subscribe", "+unsubscribe", "+memory|usage"]
# Putting a job on a queue: SADD rq:queues, HSET rq:job:ID, RPUSH rq:queue:NAME (one selector each,
# so no command reaches a key of the other kinds).
_ENQUEUE_ANYWHERE = [f"(%W~{QUEUE_PREFIX}* +rpush)", f"(%W~{ALL_JOBS} +hset)", "(%W~rq:queues +sadd)"]


def web_rules() -> list[str]:
    """The web side's permissions (not its password)."""
    return [*_SESSION, f"%R~{QUEUE_PREFIX}*", "+lrange", "+llen",
            f"(%W~{QUEUE_PREFIX}* +rpush +lrem)",          # enqueue, cancel
            f"(%W~{ALL_JOBS} +hset +del)",                 # enqueue, cancel
            "(%W~rq:queues +sadd)",
            f"(%W~vzpanel:task-secret:* %W~{SCHEDULER_LOCK_KEY} +set)",
            f"(~{WAITERS_KEY} +zadd +zrem +zremrangebyscore +zcard)",  # the places to wait for a task's end
            f"(%W~{CONSOLE_PREFIX}* +rpush +xadd +expire)",    # ask for a console, type into it
            f"(%R~{CONSOLE_PREFIX}* +xread +exists)"]          # read its output, is its agent there


def worker_name_prefix(host_name: str) -> str:
    return f"vzpanel-agent.{host_name}."


def host_rules(name: str, host_id: int) -> list[str]:
    """A host agent's permissions (not its password). Host names have no '.' or ':', so no pattern
    of one host matches a key of another."""
    queue = f"vzpanel.host.{name}"
    jobs = job_prefix(host_id)
    worker = worker_name_prefix(name)
    own = [f"rq:queue:{queue}", f"rq:queue:{queue}:*",
           *(f"rq:{registry}:{queue}" for registry in
             ("wip", "finished", "failed", "deferred", "scheduled", "canceled", "clean_registries", "workers")),
           # RQ also writes rq:job::ID:dependencies (sic).
           *(f"{kind}{jobs}*" for kind in ("rq:job:", "rq:job::", "rq:results:", "rq:executions:", "rq:execution:")),
           f"rq:worker:{worker}*", f"vzpanel:task-secret:{name}:*", f"{CONSOLE_PREFIX}h{int(host_id)}:*"]
    return [*_SESSION, *_WORKER, "+xread", "+blpop", *(f"~{pattern}" for pattern in own),
            "%W~rq:workers", "%W~rq:queues", "%R~rq:suspended", "%R~rq:groups", f"&rq:pubsub:{worker}*",
            *_ENQUEUE_ANYWHERE]


@dataclass(frozen=True)
class HostAccess:
    """What the ACL of one host's agent is made from: its Host row's name, id and token hash."""

    name: str
    host_id: int
    token_sha256: str

    @property
    def user(self) -> str:
        return f"{HOST_USER_PREFIX}{self.name}"


def password_hash(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


def read_root_secret(path: str) -> str | None:
    """A password from a file that only root can have written (None: no such file). As root, a link,
    a FIFO, a file root does not own or that others may read or anyone but root may write is not
    trusted: another user could have put it there."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd) as fh:
        info = os.fstat(fd)
        if os.geteuid() == 0 and (info.st_uid != 0 or not stat.S_ISREG(info.st_mode) or info.st_mode & 0o026):
            return None
        return fh.read(4096).strip() or None


def admin_connection(password_file: str) -> Redis | None:
    """The administrator's client, or None when this process cannot read the password (not root,
    or not the panel's machine): then it administers nothing."""
    password = read_root_secret(password_file)
    return connect(ADMIN_USER, password) if password else None


def _password_hashes(acl_list: list) -> dict[str, set[str]]:
    """{user: its password hashes} from ACL LIST lines ('user NAME on #HASH ~... +...')."""
    users = {}
    for line in acl_list:
        words = (line.decode() if isinstance(line, bytes) else line).split()
        users[words[1]] = {w[1:] for w in words[2:] if w.startswith("#")}
    return users


def reconcile(admin: Redis, hosts: list[HostAccess], *, all_rules: bool = False) -> list[str]:
    """Make the host users match `hosts` (the Host rows that have a token): create missing ones, set
    a changed token as the password and cut the connections made with the old one, delete the users
    of revoked and removed hosts (Redis cuts their connections). all_rules: also rewrite every
    user's permissions (at an agent's start, so a new version's rules take effect). Returns what
    changed, for the log."""
    existing = _password_hashes(admin.acl_list())
    done = []
    if all_rules and WEB_USER in existing:  # keep its password: the operator or `make run` set it
        admin.execute_command("ACL", "SETUSER", WEB_USER, "resetkeys", "resetchannels", "clearselectors",
                              "-@all", *web_rules())
    for host in hosts:
        current = existing.get(host.user)
        if current == {host.token_sha256} and not all_rules:
            continue
        admin.execute_command("ACL", "SETUSER", host.user, "reset", "on", f"#{host.token_sha256}",
                              "resetchannels", *host_rules(host.name, host.host_id))
        if current is not None and current != {host.token_sha256}:
            admin.client_kill_filter(user=host.user)  # connections made with the old token
            done.append(f"Redis user {host.user}: new token, old connections cut")
        elif current is None:
            done.append(f"Redis user {host.user} created")
    wanted = {host.user for host in hosts}
    for user in existing:
        if user.startswith(HOST_USER_PREFIX) and user not in wanted:
            admin.acl_deluser(user)  # also closes its connections
            done.append(f"Redis user {user} removed (token revoked or host removed)")
    return done


def server_users(admin_password: str, web_password: str) -> list[str]:
    """The `user` lines of redis-server's configuration: nobody gets in without a password."""
    return ["user default off resetpass resetkeys resetchannels -@all",
            f"user {ADMIN_USER} on #{password_hash(admin_password)} ~* &* +@all",
            f"user {WEB_USER} on #{password_hash(web_password)} resetchannels {' '.join(web_rules())}"]
