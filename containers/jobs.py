"""What the host agent does for each container task. Runs only in the agent process."""
from __future__ import annotations

import functools
import logging
import threading
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from tasks.choices import TaskType
from tasks.registry import handler
from tasks.runner import TaskFailed

from .choices import LXC_STATE_MAP, ContainerStatus
from .engine.cgroups import CgroupError, Limits
from .engine.commands import CommandError
from .engine.diskimage import DiskImageError, MountTable
from .engine.storage import StorageError
from .engine.faults import fault_point
from .engine.lxc import ABSENT, ContainerSpec, Lxc, LxcError
from .engine.safefs import SafeFsError, Tree, readonly_view, root_only_dir
from .engine.vzdump import ArchiveError
from .engine.templates import find_template
from .models import Container

MAX_EXEC_OUTPUT = 1 << 20  # keep at most 1 MiB of a command's output in the task
MAX_LOGGED_LINES = 1000    # of a command's output into the task log as it comes
MAX_LOGGED_LINE = 4096     # bytes: a longer line (or one without an end) is logged in pieces
MAX_STREAMED = 16 << 20    # bytes of a command's output streamed to vzctl exec as it comes
logger = logging.getLogger(__name__)


def lxc_for(host) -> Lxc:
    """The host's containers: in an lxcpath root alone can change (the row's path is not trusted blindly),
    each on the storage pool its row names."""
    from storage.jobs import storage_resolver
    lxcpath = root_only_dir(host.lxcpath, "lxcpath")
    return Lxc(lxcpath, storage_of=storage_resolver(host, lxcpath))


def views_dir() -> Path:
    """Where the agent mounts its read-only views of containers' files (its own, mode 0700)."""
    return Path(settings.AGENT_DATA_DIR) / "views"


def live_view(lxc: Lxc, ctid: int):
    """A read-only view of a container's files on which no symlink is ever followed: what rsync
    and tar read instead of the root filesystem, so a link the container swaps in mid-copy is
    copied as a link and never leads them onto the host (safefs.readonly_view)."""
    return readonly_view(lxc.rootfs(ctid), views_dir(), f"{int(ctid)}/rootfs")


def limits_for(values) -> Limits:
    """The engine's view of a container's limits, from its row (or a dict of the same fields)."""
    get = values.get if isinstance(values, dict) else lambda k, d=None: getattr(values, k, d)
    return Limits(ram_mb=get("ram_mb"), ram_barrier_mb=get("ram_barrier_mb"), swap_mb=get("swap_mb") or 0,
                  cpuunits=get("cpuunits"), cpulimit=get("cpulimit"), cpus=get("cpus"), numproc=get("numproc"),
                  ioprio=get("ioprio"))


def spec_for(ct: Container, net=None) -> ContainerSpec:
    """`net`: the container's network (network.jobs.network_of), when the caller has it already."""
    from network.jobs import network_of
    net = network_of(ct) if net is None else net
    return ContainerSpec(ctid=ct.ctid, hostname=ct.hostname, onboot=ct.onboot, limits=limits_for(ct),
                         net_lines=net.lxc_lines(ct.ctid), addresses=tuple(net.venet),
                         nameservers=tuple(ct.nameservers or ()), searchdomain=ct.searchdomain,
                         disk_mb=ct.disk_mb, diskinodes=ct.diskinodes)


def record_state(ct: Container, lxc_state: str, nproc: int | None = None) -> None:
    """Write LXC's view of the container back to its row (nothing when the row already says it)."""
    record_states([(ct, lxc_state, nproc)])


def record_states(observed: list[tuple[Container, str, int | None]]) -> int:
    """Write LXC's view of containers (row, LXC state, task count) back to their rows; returns how
    many rows changed. Only rows that differ are written, in one bulk UPDATE per set of changed
    fields: the agent's reconcile runs every few seconds over every container, nearly all unchanged."""
    now = timezone.now()
    changed: dict[tuple[str, ...], list[Container]] = {}
    for ct, lxc_state, nproc in observed:
        status = LXC_STATE_MAP.get(lxc_state, ContainerStatus.UNKNOWN)
        fields = {"nproc": nproc if status == ContainerStatus.RUNNING else None}
        if status != ct.status:
            fields.update(status=status, status_changed_at=now)
        fields = {key: value for key, value in fields.items() if getattr(ct, key) != value}
        for key, value in fields.items():
            setattr(ct, key, value)
        if fields:
            changed.setdefault(tuple(sorted(fields)), []).append(ct)
    for names, rows in changed.items():
        if len(rows) == 1:  # a task's own container: a plain UPDATE, not bulk_update's CASE per field
            Container.objects.filter(pk=rows[0].pk).update(**{name: getattr(rows[0], name) for name in names})
        else:
            Container.objects.bulk_update(rows, names)
    return sum(len(rows) for rows in changed.values())


def refresh_state(ct: Container, lxc: Lxc, known: str | None = None) -> str:
    """Record LXC's state (asked, unless the caller just established it) and the task count."""
    state = known or lxc.state(ct.ctid)
    record_state(ct, state, lxc.nproc(ct.ctid) if state == "RUNNING" else None)
    return state


def network_up(ct: Container, lxc: Lxc, log, net=None) -> None:
    """Addresses and routes of a container that has just started (the host side through netlink).
    `net`: its network as the caller read it for the config, not read again."""
    from network.jobs import bring_up, network_of
    net = network_of(ct) if net is None else net
    if not (net.venet or net.veths):
        return  # nothing to configure: spare the lxc-info call that finds the init pid
    for line in bring_up(ct, lxc.init_pid(ct.ctid)):
        log(f"Network: {line}")


def network_down(ct: Container, log) -> None:
    from network.jobs import bring_down
    bring_down(ct)


def as_task_failure(exc: BaseException) -> BaseException:
    """What a failed create, reset or restore raises: its reason on one line, as a TaskFailed (so
    no traceback reaches the user). An error not meant for users (a bug) is returned as it is."""
    if isinstance(exc, OSError):
        text = exc.strerror or str(exc)
        text += f" ({exc.filename})" if exc.filename else ""
    elif isinstance(exc, (TaskFailed, LxcError, ArchiveError, SafeFsError, DiskImageError, StorageError, CgroupError,
                          CommandError)):
        text = str(exc)
    else:
        return exc
    return TaskFailed("; ".join(line.strip() for line in text.splitlines() if line.strip()) or type(exc).__name__)


def _container(task) -> Container:
    if task.container is None:
        raise TaskFailed(f"container {task.ctid} no longer exists in the panel")
    return task.container


# -- the root filesystem mounted or not (vzctl mount, umount) ------------------------------------
def _mark_unmounted(ct: Container, unmounted: bool) -> None:
    Container.objects.filter(pk=ct.pk).update(unmounted=unmounted)
    ct.unmounted = unmounted


def needs_rootfs(run_handler):
    """For a handler that reads or writes a container's files: a root filesystem its admin
    unmounted (vzctl umount) is mounted for the task and unmounted after it, so the mark holds
    (vzctl mounted a stopped container for set --userpasswd or vzdump, and unmounted it again).
    If it ends running (a restore with start), it is mounted and the mark goes."""
    @functools.wraps(run_handler)
    def mounted_for_the_task(task, log):
        ct = task.container
        lxc = lxc_for(task.host) if ct is not None and ct.unmounted else None
        disk = lxc.disk(ct.ctid) if lxc else None
        if disk is None or disk.is_mounted():
            return run_handler(task, log)
        log(f"Mounting the root filesystem of {ct.ctid} for this task (it was unmounted with vzctl umount)")
        disk.mount()
        try:
            return run_handler(task, log)
        finally:
            try:
                state = lxc.state(ct.ctid)
                if state == "STOPPED":
                    disk.umount()
                    log(f"Unmounted the root filesystem of {ct.ctid} again, as vzctl umount left it")
                elif state != ABSENT:  # running now; ABSENT: gone from this host (destroyed, migrated)
                    _mark_unmounted(ct, False)
            except (DiskImageError, StorageError, LxcError, CommandError) as exc:
                log(f"The root filesystem of {ct.ctid} stays mounted for now ({exc}); the agent unmounts it "
                    "at its next reconcile")
    return mounted_for_the_task


def keep_mount_as_marked(ct: Container, lxc: Lxc, lxc_state: str, mounts: MountTable | None = None) -> None:
    """The agent's reconcile (ct held by no task): every disk image mounted (they are not after a
    host reboot), except one unmounted with vzctl umount, which is unmounted again if found mounted
    while stopped (after an agent died in a task that had mounted it). The row is read again before
    anything changes: a vzctl mount or umount may have finished since the caller read it. `mounts`:
    the mount table, read once by a caller that checks many containers."""
    disk = lxc.disk(ct.ctid)
    if disk is None or lxc_state == ABSENT:
        return
    if ct.unmounted and lxc_state != "STOPPED":
        _mark_unmounted(ct, False)  # started at the shell: it runs, so its root filesystem is mounted
        return
    if disk.is_mounted(mounts) != ct.unmounted:
        return
    if not Container.objects.filter(pk=ct.pk, unmounted=ct.unmounted, lock_task__isnull=True).exists():
        return
    if ct.unmounted:
        disk.umount()
        logger.warning("CT %s was unmounted with vzctl umount and found mounted: unmounted it again", ct.ctid)
    else:
        disk.mount()


@handler(TaskType.CT_MOUNT)
def mount(task, log):
    """vzctl mount: the root filesystem mounted at LXCPATH/CTID/rootfs. The mark of vzctl umount
    goes first: an agent that dies before the mount mounts it at its next reconcile."""
    ct = _container(task)
    lxc = lxc_for(task.host)
    if lxc.state(ct.ctid) == ABSENT:
        refresh_state(ct, lxc, known=ABSENT)
        raise TaskFailed(f"container {ct.ctid} does not exist on {task.host.name}")
    _mark_unmounted(ct, False)
    disk = lxc.disk(ct.ctid)
    if disk is None:
        log(f"Container is already mounted: its root filesystem is a plain directory, {lxc.rootfs(ct.ctid)}")
    elif disk.is_mounted():
        log(f"Container is already mounted at {lxc.rootfs(ct.ctid)}")
    else:
        disk.mount()
        log(f"Container is mounted: {disk.describe} at {lxc.rootfs(ct.ctid)}")
    return {"mounted": True}


@handler(TaskType.CT_UMOUNT)
def umount(task, log):
    """vzctl umount: unmount a stopped container's disk image and mark it, so that the agent's
    reconcile and restarts leave it unmounted until vzctl mount or start (mark after the unmount:
    an agent that dies between the two mounts it again, and vzctl status never says unmounted of a
    mounted one)."""
    ct = _container(task)
    lxc = lxc_for(task.host)
    state = lxc.state(ct.ctid)
    if state != "STOPPED":
        refresh_state(ct, lxc, known=state)
        if state == ABSENT:
            raise TaskFailed(f"container {ct.ctid} does not exist on {task.host.name}")
        raise TaskFailed(f"Container {ct.ctid} is {'suspended' if state == 'FROZEN' else 'running'} "
                         "-- stop it first")
    disk = lxc.disk(ct.ctid)
    if disk is None:
        raise TaskFailed(f"the root filesystem of {ct.ctid} is a plain directory ({lxc.rootfs(ct.ctid)}), "
                         "not a disk image: there is nothing to unmount")
    if disk.is_mounted():
        disk.umount()
        log(f"Container is unmounted; it stays so until vzctl mount {ct.ctid} or vzctl start {ct.ctid}")
    else:
        log("Container is not mounted; it stays so until vzctl mount or start")
    _mark_unmounted(ct, True)
    return {"mounted": False}


@handler(TaskType.CT_CREATE)
def create(task, log):
    from network.jobs import network_of
    ct = _container(task)
    lxc = lxc_for(task.host)
    try:
        template = find_template(task.host.template_dir, ct.ostemplate)
        if template is None:
            raise TaskFailed(f"OS template {ct.ostemplate!r} is not in {task.host.template_dir}")
        net = network_of(ct)
        lxc.create(spec_for(ct, net), template, log, customize=_root_credentials(task, ct, log))
        fault_point("create.built")
    except BaseException as exc:
        # Nothing is left on disk (Lxc.create cleans up); free the CTID in the panel too.
        Container.objects.filter(pk=ct.pk, status=ContainerStatus.CREATING).delete()
        log(f"Container {ct.ctid} removed after the failed create")
        raise as_task_failure(exc) from None
    if task.params.get("start"):
        log(f"Starting container {ct.ctid}")
        task.set_progress(80)
        try:
            lxc.start(ct.ctid)
        except BaseException:
            refresh_state(ct, lxc)  # created but not running: the row says what LXC says
            raise
        refresh_state(ct, lxc, known="RUNNING")
        network_up(ct, lxc, log, net)
    else:
        record_state(ct, "STOPPED")
    return {"ctid": ct.ctid, "status": ct.status}


# -- a root password and SSH keys given at create time -------------------------------------------
def _root_credentials(task, ct: Container, log):
    """What the create writes into the new root filesystem besides the template (issue 18): root's
    password (the $6$ hash the web process made, taken once from Redis, tasks/secrets.py) and
    SSH public keys (in the task's params: not secret). None when the create gives neither.

    They are written straight into the unpacked tree while it is still a hidden partial directory,
    through safefs (never following a link the template may hold at /etc/shadow or /root/.ssh),
    before the container exists under its CTID and long before anything runs in it: so there is
    no process to race, nothing needs starting for it (chpasswd through lxc-attach would), and a
    failure here removes the half-made container like any failed create."""
    want_password = bool(task.params.get("root_password"))
    keys = [str(k) for k in task.params.get("ssh_public_keys") or []]
    if not (want_password or keys):
        return None
    hashed = None
    if want_password:
        from panel.shacrypt import SHA512_CRYPT_RE
        from tasks.secrets import HASH_TTL_SECONDS, take_secret
        hashed = take_secret(task.pk)
        if hashed is None:
            raise TaskFailed(f"the root password was not found in Redis (it is kept for {HASH_TTL_SECONDS // 3600} "
                             "hours, and lost if Redis restarts); create the container again")
        if not SHA512_CRYPT_RE.fullmatch(hashed):  # Redis is writable by the web user: only a $6$ hash goes in
            raise TaskFailed("the root password did not reach the agent as a SHA-512 crypt hash; nothing was set")

    def customize(rootfs: Path) -> None:
        from .engine.lxc import set_shadow_hash
        with Tree(rootfs) as tree:
            if hashed is not None:
                set_shadow_hash(tree, "root", hashed, f"template {ct.ostemplate}",
                                lastchg=int(timezone.now().timestamp()) // 86400)
                log("Root password set (a SHA-512 crypt hash in /etc/shadow)")
            if keys:
                ssh_path, added = install_ssh_keys(tree, "root", keys, ct.ctid)
                log(f"{len(added)} SSH public key{'s' if len(added) != 1 else ''} for root "
                    f"in /{ssh_path}/authorized_keys")
    return customize


@handler(TaskType.CT_START)
def start(task, log):
    ct = _container(task)
    lxc = lxc_for(task.host)
    if lxc.state(ct.ctid) == "RUNNING":
        refresh_state(ct, lxc)
        raise TaskFailed(f"container {ct.ctid} is already running")
    if ct.unmounted:  # vzctl umount's mark goes first, as in mount()
        log(f"Mounting the root filesystem of {ct.ctid} (it was unmounted with vzctl umount)")
        _mark_unmounted(ct, False)
    lxc.ensure_mounted(ct.ctid)  # before the identity files are written into it
    from network.jobs import network_of
    net = network_of(ct)
    spec = spec_for(ct, net)
    lxc.write_config(spec)  # the panel's settings are the truth, as CTID.conf is for vzctl
    lxc.write_identity(spec)
    log(f"Starting container {ct.ctid}")
    try:
        lxc.start(ct.ctid)
    except BaseException:
        refresh_state(ct, lxc)
        raise
    refresh_state(ct, lxc, known="RUNNING")  # lxc-start -d has just said so
    network_up(ct, lxc, log, net)
    log(f"Container {ct.ctid} is running")
    return {"status": ct.status}


@handler(TaskType.CT_STOP)
def stop(task, log):
    ct = _container(task)
    lxc = lxc_for(task.host)
    timeout = int(task.params.get("timeout", settings.CONTAINER_STOP_TIMEOUT))
    log(f"Stopping container {ct.ctid} (clean shutdown, killed after {timeout} s)")
    try:
        lxc.stop(ct.ctid, timeout=timeout)
    finally:
        refresh_state(ct, lxc)
    network_down(ct, log)
    log(f"Container {ct.ctid} is stopped")
    return {"status": ct.status}


@handler(TaskType.CT_RESTART)
def restart(task, log):
    stop(task, log)
    task.set_progress(50)
    return start(task, log)


@handler(TaskType.CT_DESTROY)
def destroy(task, log):
    ct = _container(task)
    lxc = lxc_for(task.host)
    state = lxc.state(ct.ctid)
    if state not in ("STOPPED", ABSENT):
        refresh_state(ct, lxc)
        raise TaskFailed(f"container {ct.ctid} is {state.lower()} in LXC; stop it first")
    log(f"Destroying container {ct.ctid} and its root filesystem")
    lxc.destroy(ct.ctid)
    fault_point("destroy.removed")
    Container.objects.filter(pk=ct.pk).delete()
    log(f"Container {ct.ctid} destroyed")
    return {"destroyed": ct.ctid}


@handler(TaskType.CT_SET)
@needs_rootfs
def apply_settings(task, log):
    ct = _container(task)
    lxc = lxc_for(task.host)
    running = lxc.state(ct.ctid) == "RUNNING"
    old = task.params.get("old") or {}
    limit_keys = set(old) & set(task.params)
    if limit_keys:
        try:
            _apply_limit_changes(task, ct, lxc, old, limit_keys, running, log)
        except (LxcError, CgroupError, DiskImageError) as exc:
            # The service saved the new values to reserve them against the quota; the host
            # refused them, so the row goes back to what the container really has.
            Container.objects.filter(pk=ct.pk).update(**old)
            for key, value in old.items():
                setattr(ct, key, value)
            if running:
                lxc.apply_limits(ct.ctid, limits_for(ct))
            raise TaskFailed(f"{exc}. The limits were left as they were.") from None
    lxc.write_config(spec_for(ct))
    if "hostname" in task.params:
        lxc.set_hostname(spec_for(ct), running=running)
        log(f"Hostname set to {ct.hostname}" + (" (also in the running container)" if running else ""))
    if "onboot" in task.params:
        log(f"onboot is {'yes' if ct.onboot else 'no'}")
    return {"saved": sorted(task.params)}


def _apply_limit_changes(task, ct, lxc, old: dict, keys: set, running: bool, log) -> None:
    if {"disk_mb", "diskinodes"} & keys:
        outcome = lxc.set_disk(ct.ctid, ct.disk_mb, ct.diskinodes if "diskinodes" in keys else None, running, log)
        usage = lxc.disk_usage(ct.ctid)
        if usage:
            log(f"Disk {outcome}: {usage.total_bytes // (1024 * 1024)} MiB, {usage.inodes_total} inodes "
                f"({usage.used_bytes // (1024 * 1024)} MiB and {usage.inodes_used} inodes in use)")
    if running and keys - {"disk_mb", "diskinodes", "disk_soft_mb", "diskinodes_soft"}:
        for line in lxc.apply_limits(ct.ctid, limits_for(ct), limits_for(old)):
            log(f"Applied {line}")
    log("Saved " + ", ".join(f"{k}={getattr(ct, k)}" for k in sorted(keys))
        + ("" if running else " (the cgroup limits apply at the next start)"))


def _container_in(task, lxc_state: str, what: str) -> tuple[Container, Lxc]:
    """The task's container and its host's LXC, if LXC says it is in `lxc_state`; else the row is
    put right and the task fails saying the container is not `what`."""
    ct = _container(task)
    lxc = lxc_for(task.host)
    if not (lxc.is_running(ct.ctid) if lxc_state == "RUNNING" else lxc.state(ct.ctid) == lxc_state):
        refresh_state(ct, lxc)
        raise TaskFailed(f"container {ct.ctid} is not {what}")
    return ct, lxc


@handler(TaskType.CT_EXEC, detached=True)
def exec_command(task, log):
    ct, lxc = _container_in(task, "RUNNING", "running")
    argv = task.params["argv"]
    log("Running: " + " ".join(argv))
    live = LiveOutput(task, log)
    try:
        res = lxc.attach(ct.ctid, argv, timeout=task.params.get("timeout", 60),
                         input_text=task.params.get("stdin"), keep_last=MAX_EXEC_OUTPUT, on_output=live)
    except BaseException:
        live.finish(None)
        raise
    live.finish(res.returncode)
    log(f"Exit status {res.returncode}")
    return {"exit_code": res.returncode, "stdout": res.stdout[-MAX_EXEC_OUTPUT:], "stderr": res.stderr[-MAX_EXEC_OUTPUT:]}


class LiveOutput:
    """A command's output as it comes (called from the threads reading it): line by line into the
    task log ("| ..."; the task page shows it live), and byte for byte into the task's output
    stream in Redis, which vzctl exec prints from (consoles/relay.py), ending with its exit status.
    Both are bounded; past that the result's last MAX_EXEC_OUTPUT bytes are what is kept."""

    def __init__(self, task, log):
        from consoles import relay
        self.relay = relay
        self.log = log
        self.key = relay.task_output_key(task.host_id, task.pk)
        self.partial = {"stdout": b"", "stderr": b""}
        self.lock = threading.Lock()
        self.logged = self.streamed = 0
        self.streaming = True

    def __call__(self, name: str, chunk: bytes) -> None:
        self._stream((self.relay.data if name == "stdout" else self.relay.error_data)(chunk), len(chunk))
        with self.lock:
            *lines, rest = (self.partial[name] + chunk).split(b"\n")
            while len(rest) > MAX_LOGGED_LINE:
                lines.append(rest[:MAX_LOGGED_LINE])
                rest = rest[MAX_LOGGED_LINE:]
            self.partial[name] = rest
            for line in lines:
                self._log_line(line)

    def finish(self, exit_code: int | None) -> None:
        """The command ended (None: it could not be run to its end): what is left of a last line
        into the log, and the end of the stream."""
        with self.lock:
            for name, rest in self.partial.items():
                if rest:
                    self._log_line(rest)
                self.partial[name] = b""
        self._stream(self.relay.close("" if exit_code is None else f"exit {exit_code}"), 0, force=True)

    def _log_line(self, line: bytes) -> None:
        self.logged += 1
        if self.logged <= MAX_LOGGED_LINES:
            self.log("| " + line.decode(errors="replace").rstrip("\r"))
        elif self.logged == MAX_LOGGED_LINES + 1:
            self.log(f"| ... (more output than {MAX_LOGGED_LINES} lines: the result keeps its last "
                     f"{MAX_EXEC_OUTPUT >> 20} MiB)")

    def _stream(self, message, size: int, force: bool = False) -> None:
        from tasks.queue import redis_connection
        relay = self.relay
        with self.lock:
            if not self.streaming or (self.streamed + size > MAX_STREAMED and not force):
                if self.streaming:
                    self.streaming = False
                    message = relay.error_data(f"\n[vzpanel] more than {MAX_STREAMED >> 20} MiB of output: "
                                               "the rest is not shown\n".encode())
                elif not force:
                    return
            self.streamed += size
            try:
                with redis_connection().pipeline(transaction=False) as pipe:
                    for start in range(0, max(1, len(message.data)), relay.MAX_DATA):
                        part = relay.Message(message.kind, data=message.data[start:start + relay.MAX_DATA],
                                             reason=message.reason)
                        pipe.xadd(self.key, part.fields(), maxlen=relay.STREAM_MAXLEN, approximate=True)
                    pipe.expire(self.key, relay.KEY_TTL)
                    pipe.execute()
            except Exception:
                logger.exception("cannot stream the output of a command")
                self.streaming = False


@handler(TaskType.CT_SUSPEND)
def suspend(task, log):
    """vzctl suspend: freeze every process; the row says frozen, which the agent's reconcile
    respects (a container frozen without that is thawed). No checkpoint is written: the state
    stays in memory, and a host reboot loses it, as vzctl chkpnt --suspend without --dump did."""
    ct, lxc = _container_in(task, "RUNNING", "running")
    criu = (task.host.capabilities or {}).get("criu") or {"ok": False, "reason": "not checked by the agent"}
    lxc.freeze(ct.ctid)
    refresh_state(ct, lxc)
    if criu.get("ok"):
        log("No checkpoint is written: criu check passes on this host, but lxc-checkpoint could not restore the "
            "panel's containers (each in a user namespace of its own; docs/operations.md, Migration), so "
            "suspend freezes them in memory")
    else:
        log(f"No checkpoint is written: CRIU is unavailable on this host ({criu.get('reason')})")
    log(f"Container {ct.ctid} is suspended (frozen in memory; vzctl resume {ct.ctid} thaws it; "
        "a reboot of the host loses it)")
    return {"status": ct.status, "checkpoint": False}


@handler(TaskType.CT_RESUME)
def resume(task, log):
    ct, lxc = _container_in(task, "FROZEN", "suspended")
    lxc.unfreeze(ct.ctid)
    refresh_state(ct, lxc)
    log(f"Container {ct.ctid} is running again")
    return {"status": ct.status}


@handler(TaskType.CT_RESET)
@needs_rootfs
def reset(task, log):
    ct = _container(task)
    lxc = lxc_for(task.host)
    if lxc.state(ct.ctid) != "STOPPED":
        raise TaskFailed(f"container {ct.ctid} must be stopped to be reset")
    template = find_template(task.host.template_dir, ct.ostemplate)
    if template is None:
        raise TaskFailed(f"OS template {ct.ostemplate!r} is no longer in {task.host.template_dir}")
    log(f"Replacing the root filesystem of {ct.ctid} with a fresh {template.name}")
    try:
        lxc.reset(spec_for(ct), template, log)
    except BaseException as exc:
        log(f"Container {ct.ctid} keeps its old root filesystem")
        raise as_task_failure(exc) from None
    log(f"Container {ct.ctid} is as new")
    return {"reset": ct.ctid}


@handler(TaskType.CT_USERPASSWD)
@needs_rootfs
def set_password(task, log):
    from tasks.secrets import take_secret
    ct = _container(task)
    lxc = lxc_for(task.host)
    password = take_secret(task.pk)
    if password is None:
        raise TaskFailed("the password was not found (it expires after 10 minutes); set it again")
    user = task.params["user"]
    how = lxc.set_password(ct.ctid, user, password, running=lxc.state(ct.ctid) == "RUNNING")
    del password
    log(f"Password of {user} set ({'chpasswd inside the container' if how == 'chpasswd' else 'in /etc/shadow'})")
    return {"user": user}


@handler(TaskType.CT_SSHKEY)
@needs_rootfs
def add_ssh_key(task, log):
    """Add a public key to a user's ~/.ssh/authorized_keys. The user, home and ids come from the
    container's /etc/passwd, so every path is the tenant's: walked without following links (the
    home directory itself is found as the container would, inside its tree)."""
    ct = _container(task)
    user, key = task.params["user"], task.params["key"]
    with Tree(lxc_for(task.host).rootfs(ct.ctid)) as tree:
        ssh_path, added = install_ssh_keys(tree, user, [key], ct.ctid)
    present = not added
    log(f"SSH key {'already present' if present else 'added'} for {user} (/{ssh_path}/authorized_keys)")
    return {"user": user, "added": not present}


def install_ssh_keys(tree: Tree, user: str, keys: list[str], ctid: int) -> tuple[str, list[str]]:
    """Add `keys` (checked public keys, one line each) to `user`'s ~/.ssh/authorized_keys in the root
    filesystem `tree`: .ssh 0700 and the file 0600, both the user's. Returns the .ssh path (inside
    the tree) and the keys that were not there yet."""
    uid, gid, home = _passwd_entry(tree, user, ctid)
    where = tree.resolve(home) if home.strip("/") else None
    ssh_path = f"{where if where is not None else home.strip('/')}/.ssh"
    owner = (uid, gid)
    with tree.subtree(ssh_path, create=0o700, owner=owner) as ssh:
        ssh.set_owner("", owner, 0o700)
        current = ssh.read_text("authorized_keys", AUTHORIZED_KEYS_LIMIT, missing_ok=True) or ""
        present = {line.strip() for line in current.splitlines()}
        added = [key for key in dict.fromkeys(keys) if key not in present]
        if added:
            text = current + ("\n" if current and not current.endswith("\n") else "") + "".join(k + "\n" for k in added)
            ssh.write("authorized_keys", text, mode=0o600, owner=owner)
    return ssh_path, added


PASSWD_LIMIT = 8 << 20
AUTHORIZED_KEYS_LIMIT = 1 << 20


def _passwd_entry(tree: Tree, user: str, ctid: int) -> tuple[int, int, str]:
    """(uid, gid, home) of `user` from the container's /etc/passwd."""
    for line in tree.read_text("etc/passwd", PASSWD_LIMIT).splitlines():
        fields = line.split(":")
        if len(fields) >= 6 and fields[0] == user:
            try:
                return int(fields[2]), int(fields[3]), fields[5]
            except ValueError:
                raise TaskFailed(f"the entry of {user} in /etc/passwd of container {ctid} has no numeric ids") from None
    raise TaskFailed(f"there is no user {user} in container {ctid}")
