"""The host agent: the only process that runs privileged commands on its host.

It is an RQ worker for its host's queue, plus a housekeeping process of its own that
reports the host's metrics (heartbeat), reconciles the panel's view of containers with
LXC's, samples running containers and consolidates their samples.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
import time
from datetime import datetime, timedelta, timezone as dt_timezone
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.utils import timezone
from redis.exceptions import AuthenticationError, ConnectionError as RedisConnectionError

from containers.choices import LXC_STATE_MAP, ContainerStatus
from containers.engine import diskimage, sysinfo
from containers.engine.templates import list_templates
import backups.jobs  # noqa: F401  (registers the backup task handler)
import containers.migration  # noqa: F401  (registers the migration and evacuation handlers)
import containers.template_jobs  # noqa: F401  (registers the OS template task handlers)
import network.jobs  # noqa: F401  (registers the network task handlers)
import storage.jobs  # noqa: F401  (registers the storage pool and snapshot task handlers)
from containers.jobs import keep_mount_as_marked, lxc_for, record_states  # also registers the container task handlers
from containers.models import Container, OSTemplate
from consoles.agent import ConsoleServer
from tasks.choices import TaskStatus, TaskType
from tasks.models import Task
from tasks.queue import host_queue, job_id_for, redis_connection, use_identity
from tasks.redis_acl import HostAccess, admin_connection, reconcile as reconcile_acl
from tasks.runner import serve_host, wait_for_detached
from tasks.services import enqueue, finish_task
from tasks.worker import make_worker

from . import recovery
from .housekeeping import Housekeeping

LOST_JOB_SECONDS = 10  # a queued task not on the queue for this long lost its job (see requeue_lost_jobs)
from .models import Host

logger = logging.getLogger("vzpanel.agent")
# How long a new agent waits for the panel's agent to make its Redis user (it does so at each heartbeat).
REDIS_USER_WAIT_SECONDS = 60
CONSOLIDATE_SECONDS = 60  # samples into the coarser tiers (the finest of them is a minute)
POOL_REFRESH_SECONDS = 60  # storage pools mounted and their size and use recorded (Agent.refresh_pools)


class TokenRejected(Exception):
    """The agent's host token is missing, wrong or revoked: it must not serve the host."""


class Agent:
    def __init__(self, host: Host, token: str = "", pid: int | None = None, stop=None):
        """`pid` and `stop`: the housekeeping process's (hosts/housekeeping.py) Agent, which reports
        the agent's pid and stops the agent when the token is revoked, and ends its duties on `stop`."""
        self.host = host
        self.token = token
        self.pid = pid or os.getpid()
        self.lxc = lxc_for(host)  # refuses an lxcpath that anyone but root could change
        self._stop = stop or threading.Event()
        self.revoked = False
        self.consoles = ConsoleServer(host, self.lxc)

    # -- identity ---------------------------------------------------------
    def check_token(self) -> None:
        from .services import token_matches
        self.host.refresh_from_db(fields=["token_hash"])
        if not self.host.token_hash:
            raise TokenRejected(f"host {self.host.name} has no agent token (never issued, or revoked); "
                                f"issue one on the host page or with 'manage.py hostctl token {self.host.name}'")
        if not token_matches(self.host, self.token):
            raise TokenRejected(f"the token given for host {self.host.name} is not its current token "
                                "(PANEL_HOST_TOKEN or PANEL_HOST_TOKEN_FILE)")

    def token_revoked(self) -> bool:
        """Whether this agent's token is no longer good (its housekeeping process stops the agent
        when it finds that at a heartbeat): sets `revoked`."""
        if not self.revoked:
            try:
                self.check_token()
            except TokenRejected:
                self.revoked = True
            except Exception:  # the database is gone too: the stop has another reason to tell
                logger.exception("cannot check the agent token")
        return self.revoked

    def publish_identity(self) -> None:
        """What other hosts and the panel need to know of this one: the machine (same machine means
        local copies), its migration key, its sshd host key to pin, whether CRIU works here."""
        from containers.engine import transfer
        fields = {"machine_id": transfer.machine_id()}
        ok, reason = transfer.criu_check()
        fields["capabilities"] = {**(self.host.capabilities or {}), "criu": {"ok": ok, "reason": reason}}
        try:
            fields["ssh_client_key"] = transfer.ensure_client_key(
                Path(settings.AGENT_DATA_DIR) / "ssh", f"vzpanel-agent@{self.host.name}")
        except Exception as exc:
            logger.warning("no migration key: %s", exc)
        host_key = transfer.read_public_key(Path(settings.SSH_HOST_KEY))
        if self.host.ssh_address and not self.host.ssh_host_key and host_key:
            fields["ssh_host_key"] = host_key  # pinned from now on: a changed key is refused, not accepted
        elif host_key and self.host.ssh_host_key and host_key != self.host.ssh_host_key:
            logger.warning("this host's SSH host key differs from the one pinned in the panel; migrations to "
                           "it fail until an administrator re-pins it on the host page")
        Host.objects.filter(pk=self.host.pk).update(**fields)
        for key, value in fields.items():
            setattr(self.host, key, value)
        logger.info("CRIU on %s: %s", self.host.name, reason)

    def sync_authorized_keys(self) -> None:
        """Let the agents of the other (unrevoked) hosts rsync into this host's lxcpath, and nothing else.
        Only on hosts reached over SSH: a single machine's root login is left alone."""
        from containers.engine import transfer
        if not self.host.ssh_address:
            return
        lines = [transfer.authorized_line(key, self.host.lxcpath, f"vzpanel-agent@{name}")
                 for name, key in Host.objects.exclude(pk=self.host.pk).exclude(token_hash="")
                 .exclude(ssh_client_key="").values_list("name", "ssh_client_key")]
        if transfer.write_authorized_keys(Path(settings.SSH_AUTHORIZED_KEYS), lines):
            logger.info("authorized_keys: %d migration key(s) of other hosts", len(lines))

    # -- Redis --------------------------------------------------------------
    def reconcile_redis_users(self, all_rules: bool = False) -> None:
        """Only an agent that can read the Redis administrator's password (root on the panel's
        machine) does this: every host with a token gets its Redis user, with the token as password;
        revoked and removed hosts' users go, and their connections with them."""
        admin = admin_connection(settings.REDIS_ADMIN_PASSWORD_FILE)
        if admin is None:
            return
        rows = Host.objects.exclude(token_hash="").values_list("name", "pk", "token_hash")
        try:
            for change in reconcile_acl(admin, [HostAccess(*row) for row in rows], all_rules=all_rules):
                logger.info("%s", change)
        finally:
            admin.close()

    def connect_to_redis(self) -> None:
        """From now on talk to Redis as this host's own user (password: the token). A new token's
        user appears at the next heartbeat of the agent that administers Redis: wait for it."""
        use_identity(self.host.redis_user, self.token)
        deadline = time.monotonic() + REDIS_USER_WAIT_SECONDS
        while True:
            try:
                redis_connection().ping()
                return
            except AuthenticationError as exc:
                if time.monotonic() > deadline:
                    raise TokenRejected(f"Redis does not let {self.host.redis_user} in with this token ({exc}); the "
                                        "panel machine's agent makes that user, is it running?") from None
                logger.warning("waiting for Redis to accept user %s (%s)", self.host.redis_user, exc)
                time.sleep(2)

    # -- at start ---------------------------------------------------------
    def recover(self) -> None:
        """Fail tasks that were running when the agent last stopped, and release their locks."""
        from containers.engine.safefs import release_views
        from containers.jobs import views_dir
        for path in release_views(views_dir()):
            logger.warning("unmounted the view %s left by an interrupted backup, migration or template", path)
        data_dir = Path(settings.AGENT_DATA_DIR)
        reason = recovery.stop_cut_reason(data_dir) or "interrupted: the host agent stopped while this task was running"
        for task in Task.objects.filter(host=self.host, status=TaskStatus.RUNNING).select_related("container"):
            hints = task.recovery_hints()  # the task's result until it ends: read before it does
            finish_task(task, TaskStatus.FAILED, error=reason)
            logger.warning("task %s marked interrupted", task.pk)
            if task.type in (TaskType.CT_MIGRATE, TaskType.CT_MIGRATE_IN):
                from containers.migration import recover_interrupted
                recover_interrupted(task, self.lxc, task.append_log)
            else:
                try:
                    recovery.recover_interrupted(task, self.lxc, hints)
                except Exception:  # one container's trouble must not keep the agent from serving
                    logger.exception("recovering after task %s failed", task.pk)
        for line in self.lxc.finish_swaps():
            logger.warning("%s", line)
        for path in self.lxc.remove_partials():
            logger.warning("removed the partial container %s left by an interrupted create", path)
        self.remove_partial_archives()
        from containers.migration import clean_incoming
        clean_incoming(self.lxc, logger.warning)
        self.requeue_lost_jobs()
        recovery.clear_stopping(data_dir)

    def requeue_lost_jobs(self, older_than: float = 0) -> None:
        """Queued tasks whose job Redis lost (Redis restarted without saving, or was killed), or that
        were queued under another job id (by an older version: the worker would refuse that job),
        are queued again, oldest first. At start every one; while serving, those queued more than
        `older_than` seconds ago (a task committed a moment ago may not be on the queue yet; one
        queued twice runs once: run_task claims a task only while it is queued)."""
        # Read raw: anything may be on the queue, the worker refuses what is not the panel's.
        queue = host_queue(self.host)
        queued_ids = {job_id.decode(errors="replace") for job_id in queue.connection.lrange(queue.key, 0, -1)}
        waiting = Task.objects.filter(host=self.host, status=TaskStatus.QUEUED,
                                      created_at__lte=timezone.now() - timedelta(seconds=older_than))
        for task in waiting.order_by("pk"):
            job_id = job_id_for(self.host.pk, task.pk)
            if task.rq_job_id != job_id or job_id not in queued_ids:
                logger.warning("re-queueing task %s whose job was lost", task.pk)
                Task.objects.filter(pk=task.pk).update(rq_job_id=job_id)
                enqueue(task.pk)

    def remove_partial_archives(self) -> None:
        """What an interrupted backup left: a .partial archive, a suspend-mode copy. Never a real archive."""
        import shutil
        from pathlib import Path
        dirs = {self.host.dump_dir, *self.host.storages.values_list("path", flat=True)}
        for directory in map(Path, dirs):
            if not directory.is_dir():
                continue
            for entry in directory.iterdir():
                if entry.name.endswith(".partial") and entry.is_file():
                    entry.unlink(missing_ok=True)
                    logger.warning("removed %s left by an interrupted backup", entry)
                elif entry.name.startswith(".vzdump-tmp-") and entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                    logger.warning("removed %s left by an interrupted backup", entry)

    def reconcile(self) -> None:
        """Write back the real state of containers whose row says otherwise; list LXC containers the
        panel does not know. One lxc-ls, one read of the mount table, one bulk UPDATE at most.
        The rows are read before LXC is asked: read after, a row that a task (a stop, say) changed
        since lxc-ls looked was written back with the state before the task, until the next pass."""
        managed = list(Container.objects.filter(host=self.host))
        seen = self.lxc.list_all()
        mounts = diskimage.read_mount_table()
        if any(diskimage.mounted_source(path, mounts) is None for path in self._pool_mountpoints):
            self.refresh_pools()  # a pool went (a reboot, an umount): back before its containers' mounts
            mounts = diskimage.read_mount_table()
        with storage.jobs.pools_from_rows(self.lxc, managed):  # the pools from these rows: no query each
            for ct in managed:
                if str(ct.ctid) in seen and ct.status != ContainerStatus.CREATING and not ct.lock_task_id:
                    try:  # disk images are not mounted after a host reboot; vzctl umount's stay unmounted
                        keep_mount_as_marked(ct, self.lxc, seen[str(ct.ctid)], mounts)
                    except Exception as exc:
                        logger.warning("cannot %s the disk of CT %s: %s", "unmount" if ct.unmounted else "mount",
                                       ct.ctid, exc)
        observed = []
        for ct in managed:
            # A container that a task holds is that task's to report; creating ones do not exist yet.
            if ct.lock_task_id or ct.status == ContainerStatus.CREATING:
                continue
            state = seen.get(str(ct.ctid), "ABSENT")
            # Frozen with a row that says so is a vzctl suspend; frozen otherwise, a task's leftover.
            if state == "FROZEN" and ct.status != ContainerStatus.FROZEN and \
                    recovery.thaw_if_frozen(ct, self.lxc, logger.warning):
                continue
            observed.append((ct, state, self.lxc.nproc(ct.ctid) if state == "RUNNING" else None))
        record_states(self._still_unheld(observed))
        known = {str(ct.ctid) for ct in managed}
        unmanaged = [{"name": name, "state": state} for name, state in sorted(seen.items()) if name not in known]
        if unmanaged != self.host.unmanaged:
            Host.objects.filter(pk=self.host.pk).update(unmanaged=unmanaged)
            self.host.unmanaged = unmanaged

    @staticmethod
    def _still_unheld(observed: list[tuple[Container, str, int | None]]) -> list[tuple[Container, str, int | None]]:
        """Leave out the status changes of rows that a task took, or changed, while reconcile looked
        (the task reports them): one query, and only when some status is to change."""
        changing = {ct.pk: ct for ct, state, _ in observed
                    if LXC_STATE_MAP.get(state, ContainerStatus.UNKNOWN) != ct.status}
        if not changing:
            return observed
        now = Container.objects.filter(pk__in=changing).values_list("pk", "status", "lock_task_id")
        moved = {pk for pk, status, lock in now if lock or status != changing[pk].status}
        return [item for item in observed if item[0].pk not in moved]

    def warn_privileged(self) -> None:
        """Containers started before containers got their own user namespace run with the host's
        root until they restart (their next start writes the new config): say which."""
        for ct in Container.objects.filter(host=self.host, status=ContainerStatus.RUNNING):
            if self.lxc.runs_privileged(ct.ctid):
                logger.warning("CT %s runs as the host's root (started by an older vzpanel): restart it to "
                               "give it its own user namespace", ct.ctid)

    def sync_templates(self) -> None:
        found = list_templates(self.host.template_dir)
        with transaction.atomic():
            for info in found:
                meta = info.meta or {}
                OSTemplate.objects.update_or_create(
                    host=self.host, name=info.name,
                    defaults=dict(filename=info.filename, size=info.size, sha256=info.sha256,
                                  modified_at=datetime.fromtimestamp(info.mtime, dt_timezone.utc),
                                  distribution=meta.get("distribution", ""), version=meta.get("version", ""),
                                  architecture=meta.get("architecture", ""), source=meta.get("source", ""),
                                  seen_at=timezone.now()))
            OSTemplate.objects.filter(host=self.host).exclude(name__in=[i.name for i in found]).delete()

    def log_capabilities(self) -> None:
        from containers.engine import apparmor
        from containers.engine.probes import host_capabilities
        try:
            if apparmor.ensure_lxc_profile().blocks_containers:
                logger.error("host: %s", apparmor.REMEDY)
            for line in host_capabilities().lines():
                logger.info("host: %s", line)
        except Exception:  # a report only: it must not keep the agent from serving
            logger.exception("cannot probe this host's capabilities")

    def start_onboot(self) -> None:
        """Start stopped containers marked onboot once per boot of the host, as the vz service did
        at boot. A restart of the agent or the panel leaves every container as its user left it."""
        from containers.services import start_container
        if not recovery.first_start_since_boot(Path(settings.AGENT_DATA_DIR)):
            return
        for ct in Container.objects.filter(host=self.host, onboot=True, status=ContainerStatus.STOPPED):
            try:
                task = start_container(ct, None)
                logger.info("onboot: queued start of CT %s as task %s", ct.ctid, task.pk)
            except Exception as exc:
                logger.warning("onboot: cannot start CT %s: %s", ct.ctid, exc)

    def heartbeat(self) -> None:
        try:  # first, so that a revoked agent's own Redis user is gone before it stops
            self.reconcile_redis_users()
        except Exception:
            logger.exception("cannot bring the hosts' Redis users in step")
        try:
            self.check_token()
        except TokenRejected as exc:
            if not self.revoked:
                self.revoked = True
                logger.error("%s: stopping", exc)
                os.kill(self.pid, signal.SIGTERM)  # RQ's warm shutdown: the running job finishes
            return
        Host.objects.filter(pk=self.host.pk).update(
            agent_seen_at=timezone.now(), agent_pid=self.pid,
            stats=sysinfo.host_stats(self.host.lxcpath if os.path.isdir(self.host.lxcpath) else "/"))

    # -- housekeeping (in a process of its own: hosts/housekeeping.py) --------
    def duties(self) -> None:
        """Heartbeat, reconcile, sampling and consolidation, each at its interval, until `_stop`: the
        housekeeping process's loop. As a thread of the agent they shared its interpreter lock with
        the tasks, and each minute's consolidation made the tasks then running seconds slower."""
        from metrics.consolidate import Consolidator
        from metrics.sampler import Sampler
        sampler = Sampler(self.host, self.lxc)
        consolidator = Consolidator(Container.objects.filter(host=self.host))
        now = time.monotonic()
        last = {"heartbeat": 0.0, "pools": now, "reconcile": now, "sample": 0.0, "consolidate": now}
        every = {"heartbeat": settings.AGENT_HEARTBEAT_SECONDS, "pools": POOL_REFRESH_SECONDS,
                 "reconcile": settings.AGENT_RECONCILE_SECONDS, "sample": settings.SAMPLE_SECONDS,
                 "consolidate": CONSOLIDATE_SECONDS}
        duties = {"heartbeat": self.heartbeat, "pools": self.refresh_pools, "reconcile": self._reconcile_all,
                  "sample": sampler.round, "consolidate": lambda: consolidator.run(timezone.now())}
        while not self._stop.wait(0.5):
            for name, duty in duties.items():
                if time.monotonic() - last[name] < every[name] or self._stop.is_set():
                    continue
                last[name] = time.monotonic()
                try:
                    duty()
                except Exception:
                    logger.exception("%s failed", name)
                finally:
                    close_old_connections()
        connection.close()

    def refresh_pools(self) -> None:
        """Mount the btrfs pools (not mounted after a reboot; at start this comes before reconcile
        mounts their containers) and record each pool's size and use. Once a minute, not in every
        reconcile: a pool's use changes all the time, and reconcile writes only what changed."""
        try:
            self._pool_mountpoints = storage.jobs.refresh_pools(self.host, self.lxc.lxcpath)
        except Exception as exc:
            logger.warning("cannot refresh the storage pools: %s", exc)

    _pool_mountpoints: list = []  # the btrfs pools' mountpoints as the last refresh_pools found them

    def _reconcile_all(self) -> None:
        from network.jobs import refresh_host_network
        self.sync_authorized_keys()
        self.requeue_lost_jobs(older_than=LOST_JOB_SECONDS)
        self.reconcile()
        self.sync_templates()
        refresh_host_network(self.host)

    # -- stopping ---------------------------------------------------------
    _stop_requested_at: float | None = None

    def stopping(self) -> None:
        """Told to stop (SIGTERM from runpanel or systemd, or Ctrl-C): the running tasks get
        PANEL_STOP_GRACE seconds to finish; then what they run is killed with this process, and the
        next start fails them with a reason that says so."""
        if self._stop_requested_at is not None:
            return
        self._stop_requested_at = time.monotonic()
        # Consoles end at once, each saying why in its terminal (not in the signal handler: it waits).
        threading.Thread(target=self.consoles.stop, name="consoles-stop", daemon=True).start()
        grace = settings.AGENT_STOP_GRACE
        recovery.note_stopping(Path(settings.AGENT_DATA_DIR), grace)
        logger.warning("stopping: running tasks get %s s to finish (PANEL_STOP_GRACE)", grace)
        timer = threading.Timer(grace, self._grace_over)
        timer.daemon = True
        timer.start()

    def _grace_left(self) -> float:
        if self._stop_requested_at is None:
            return settings.AGENT_STOP_GRACE
        return max(0.0, settings.AGENT_STOP_GRACE - (time.monotonic() - self._stop_requested_at))

    def _grace_over(self) -> None:
        try:
            running = list(Task.objects.filter(host=self.host, status=TaskStatus.RUNNING))
            for task in running:
                task.append_log(f"The host agent is stopping and this task did not finish within the "
                                f"{settings.AGENT_STOP_GRACE:g} s grace period: interrupting it")
            logger.error("grace period of %s s over with %s task(s) running: interrupting them",
                         settings.AGENT_STOP_GRACE, len(running))
        finally:
            recovery.kill_own_work()

    # -- main -------------------------------------------------------------
    def run(self, burst: bool = False) -> None:
        self.check_token()
        self.reconcile_redis_users(all_rules=True)
        self.connect_to_redis()
        serve_host(self.host)
        self.publish_identity()
        self.sync_authorized_keys()
        self.heartbeat()
        self.log_capabilities()  # first: it loads LXC's AppArmor profile if missing, before anything starts
        self.recover()
        self.consoles.recover()
        self.consoles.start()
        self.sync_templates()
        self.refresh_pools()  # before reconcile: a btrfs pool is mounted before its containers are
        self.reconcile()
        self.warn_privileged()
        self.start_onboot()
        # Started = serving: recovery, reconcile and onboot are done (tests wait for this too).
        Host.objects.filter(pk=self.host.pk).update(agent_started_at=timezone.now())
        housekeeping = Housekeeping(self.host.pk, self.token, self.pid)  # after recovery and the first reconcile
        housekeeping.start()
        logger.info("agent for host %s serving queue %s", self.host.name, self.host.queue_name)
        worker = make_worker(self.host, redis_connection(), self.host.record_queue_refusal, self.stopping)
        try:
            worker.work(burst=burst, logging_level="WARNING")
        except RedisConnectionError:
            if not self.token_revoked():  # a revoked agent's Redis user went with its connections: expected
                raise
        finally:
            still = wait_for_detached(self._grace_left())  # commands tenants run finish first
            if still:
                self._grace_over()  # does not return
            else:
                recovery.clear_stopping(Path(settings.AGENT_DATA_DIR))
            self.consoles.stop()
            housekeeping.stop()
            self.token_revoked()
