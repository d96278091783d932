"""vzmigrate on the agents. Runs only in agent processes.

The source host's agent drives a migration (task type ct.migrate). What must happen
on the destination it asks of the destination's agent as child tasks (ct.migrate_in)
on that host's queue, and waits for them: agents talk only through the queue and
the database. The data itself goes with rsync (containers/engine/transfer.py).

Online, without CRIU (the least downtime the kernel allows):
    prepare at the destination → rsync while running → destination ready? → freeze
    → rsync what changed → kill while frozen (nothing runs again at the source)
    → start at the destination → commit in the database → remove at the source.
Downtime is measured from the freeze to "running at the destination".

Safety: until the destination runs the container, any failure puts it back as it
was at the source (thawed, or started again) and removes the destination's copy.
The source is stopped before the destination is asked to start, and the source is
started again only once the destination's start step is known not to run (it was
cancelled while queued, or it failed and cleaned up), so two hosts never run it.
"""
from __future__ import annotations

import time
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from hosts.models import Host
from tasks.choices import FINISHED_STATES, TaskStatus, TaskType
from tasks.models import Task
from tasks.registry import handler
from tasks.runner import TaskFailed
from tasks.services import cancel_task, submit_task

from .choices import ContainerStatus
from .engine import transfer
from .engine.faults import fault_point
from .engine.commands import run
from .engine.diskimage import MIB
from .engine.lxc import ABSENT, Lxc
from .jobs import (_container, live_view, lxc_for, needs_rootfs, network_down, network_up, record_state, refresh_state,
                   spec_for)
from .models import Container

# How long each destination step may take once its agent has it (mkfs of a big disk is the slowest).
STEP_SECONDS = {"prepare": 600, "ready": 60, "finish": 120, "abort": 300}


class DestinationUnknown(TaskFailed):
    """The destination took the start step and never reported back: it may be running there."""


def agent_data_dir() -> Path:
    return Path(settings.AGENT_DATA_DIR)


def transport_between(source: Host, dest: Host, task_id: int) -> transfer.Transport:
    """How this (source) agent sends files to `dest`: SSH when it has an address, else the local
    filesystem when both hosts are this machine."""
    if dest.ssh_address:
        workdir = agent_data_dir() / "transfers" / str(task_id)
        workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return transfer.SshTransport(dest.ssh_address, dest.ssh_host_key, agent_data_dir() / "ssh" / "id_ed25519",
                                     workdir, io_timeout=settings.MIGRATE_IO_TIMEOUT)
    if dest.machine_id and dest.machine_id == Host.objects.get(pk=source.pk).machine_id:
        return transfer.LocalTransport(dest.lxcpath)
    raise TaskFailed(f"host {dest.name} has no SSH address and is not this machine: "
                     "set its SSH address on the host page")


def remote_step(parent: Task, dest: Host, task_type: str, step: str, container=None,
                timeout: float | None = None, poll: float = 0.02, **params) -> dict:
    """Ask `dest`'s agent to do one step (a child task on its queue) and wait for its result.

    Still queued after MIGRATE_QUEUE_TIMEOUT: cancelled, so it can never run later, and this
    fails. Taken but silent past its timeout: DestinationUnknown (it may have done it)."""
    child = submit_task(type=task_type, host=dest, container=container,
                        params={"step": step, "migration": parent.pk, **params})
    timeout = timeout or settings.MIGRATE_STEP_TIMEOUT or STEP_SECONDS.get(step, 600)
    queued_limit = time.monotonic() + settings.MIGRATE_QUEUE_TIMEOUT
    deadline = time.monotonic() + timeout
    while True:
        status = Task.objects.filter(pk=child.pk).values_list("status", flat=True).first()
        if status in FINISHED_STATES:
            break
        now = time.monotonic()
        if status == TaskStatus.QUEUED and (now > queued_limit or now > deadline):
            child.refresh_from_db()
            try:
                cancel_task(child)
            except Exception:
                continue  # it was taken just now: wait for its outcome
            dest = Host.objects.get(pk=dest.pk)
            raise TaskFailed(f"the agent of {dest.name} did not take the {step} step (task #{child.pk}) "
                             f"within {settings.MIGRATE_QUEUE_TIMEOUT} s: {dest.agent_status_text}")
        if status == TaskStatus.RUNNING and now > deadline:
            raise DestinationUnknown(f"the {step} step on {dest.name} (task #{child.pk}) has run for more than "
                                     f"{timeout:g} s without an answer")
        time.sleep(poll)
    child.refresh_from_db()
    if child.status != TaskStatus.OK:
        raise TaskFailed(f"on {dest.name}: {child.error or child.status} (task #{child.pk})")
    return child.result or {}


class Migration:
    def __init__(self, task: Task, log):
        self.task, self.log = task, log
        self.ct = _container(task)
        self.source: Host = task.host
        self.dest = Host.objects.filter(pk=task.params.get("dest_host_id")).first()
        if self.dest is None:
            raise TaskFailed("the destination host no longer exists")
        self.lxc = lxc_for(self.source)
        self.online = bool(task.params.get("online"))
        self.remove_source = bool(task.params.get("remove_source", True))
        self.keep_dst = bool(task.params.get("keep_dst"))
        self.bwlimit = int(task.params.get("bwlimit_kib") or 0)
        self.phase = "checking"
        self.source_view: Path | None = None  # the read-only view rsync reads the source through
        self.was_running = False
        self.timings: dict[str, float] = {}

    # -- the destination's steps, as child tasks on its queue -------------------------------------
    def step(self, name: str, timeout: float | None = None, **params) -> dict:
        return remote_step(self.task, self.dest, TaskType.CT_MIGRATE_IN, name, container=self.ct, timeout=timeout,
                           poll=0.005 if name == "finish" else 0.02, **params)

    def transport(self) -> transfer.Transport:
        return transport_between(self.source, self.dest, self.task.pk)

    def criu(self) -> tuple[bool, str]:
        """Live migration needs lxc-checkpoint to work on both hosts; each agent checks its own."""
        if not settings.CRIU_LIVE_MIGRATION:
            return False, ("it is off (PANEL_CRIU_LIVE_MIGRATION): lxc-checkpoint has not restored the panel's "
                           "unprivileged containers on the hosts it was tried on")
        reasons = {}
        for host in (Host.objects.get(pk=self.source.pk), self.dest):
            found = (host.capabilities or {}).get("criu") or {"ok": False, "reason": "not checked by its agent"}
            if not found.get("ok"):
                reasons.setdefault(found.get("reason"), []).append(host.name)
        return (not reasons), "; ".join(f"{' and '.join(names)}: {why}" for why, names in reasons.items())

    def remember(self, **fields) -> None:
        """Where the migration is, in the task row: what an agent restarting after a crash goes by."""
        state = {"phase": self.phase, "was_running": self.was_running, **fields}
        Task.objects.filter(pk=self.task.pk).update(result=state)

    # -- the whole migration ------------------------------------------------------------------------
    def run(self) -> dict:
        ct, log = self.ct, self.log
        if self.dest.pk == self.source.pk:
            raise TaskFailed(f"container {ct.ctid} is already on {self.dest.name}")
        state = self.lxc.state(ct.ctid)
        if state == ABSENT:
            raise TaskFailed(f"container {ct.ctid} does not exist on {self.source.name}")
        if state not in ("RUNNING", "STOPPED"):
            raise TaskFailed(f"container {ct.ctid} is {state}; migrate it when it is running or stopped")
        self.was_running = state == "RUNNING"
        online = self.online and self.was_running
        mode = "online" if online else "offline"
        log(f"Migrating CT {ct.ctid} from {self.source.name} to {self.dest.name} ({mode}"
            + (", the container is stopped for the copy and started again there" if self.was_running and not online
               else "") + ")")
        live = False
        if online:
            live, why = self.criu()
            if live:
                log("CRIU works on both hosts: live migration with lxc-checkpoint")
            else:
                log(f"Live migration with CRIU is not possible ({why}); falling back to copy, freeze, "
                    "copy what changed, start at the destination")
        transport = self.transport()
        log(f"Data goes to {transport.description}")
        usage = self.lxc.disk_usage(ct.ctid)
        need = usage.used_bytes if usage else 0
        started = time.monotonic()
        self.remember()
        try:
            transport.open()
            prepared = self.step("prepare", ctid=ct.ctid, disk_mb=ct.disk_mb, diskinodes=ct.diskinodes,
                                 need_bytes=need, keep_dst=self.keep_dst)
            self.phase = "prepared"
            self.remember()
            rel = prepared["dir"]
            if prepared.get("reused"):
                log(f"Reusing the copy kept on {self.dest.name} by an earlier attempt (--keep-dst): "
                    "only what changed since is copied")
            self.task.set_progress(10)
            if self.was_running and not online:
                log(f"Stopping CT {ct.ctid} on {self.source.name} for the copy")
                self.lxc.stop(ct.ctid, timeout=settings.CONTAINER_STOP_TIMEOUT)
                network_down(ct, log)
                self.phase = "source_stopped"
                self.remember()
            log(f"Copying the root filesystem ({need // MIB} MiB used)"
                + (" while the container runs" if online else ""))
            # rsync reads the source only through a view on which no link is followed: a link the
            # running container swaps in mid-copy is sent as a link, never read through.
            with live_view(self.lxc, ct.ctid) as self.source_view:
                self.timings["copy"] = transport.rsync(self.source_view, f"{rel}/rootfs",
                                                       bwlimit_kib=self.bwlimit, live=online, log=log)
                log(f"First copy took {self.timings['copy']:.2f} s")
                self.task.set_progress(70)
                if online and live:
                    result = self.live_switch(transport, rel)
                elif online:
                    result = self.freeze_switch(transport, rel)
            if not online:
                self.step("finish", tag=self.task.pk, start=self.was_running)
                self.phase = "dest_has_it"
                result = {}
        except BaseException as exc:
            self.rollback(exc)
            raise
        finally:
            transport.close()
        self.commit(result, time.monotonic() - started)
        return {"from": self.source.name, "to": self.dest.name, "mode": "live" if live else mode,
                **{f"{k}_seconds": round(v, 3) for k, v in self.timings.items()}, **result}

    def freeze_switch(self, transport, rel: str) -> dict:
        ct, log = self.ct, self.log
        self.step("ready", tag=self.task.pk)  # the destination's agent is there before we freeze
        frozen_at = time.monotonic()
        self.lxc.freeze(ct.ctid)
        self.phase = "frozen"
        self.remember()
        fault_point("migrate.frozen")
        log(f"CT {ct.ctid} frozen; copying what changed")
        self.timings["second_copy"] = transport.rsync(self.source_view, f"{rel}/rootfs", log=log)
        self.lxc.kill_frozen(ct.ctid)
        self.phase = "source_stopped"
        self.remember()
        network_down(ct, log)
        record_state(ct, "STOPPED")
        stopped_at = time.monotonic()
        self.step("finish", tag=self.task.pk, start=True)
        running_at = time.monotonic()
        self.phase = "dest_has_it"
        self.timings["downtime"] = running_at - frozen_at
        log(f"Second copy {self.timings['second_copy']:.3f} s, stop {stopped_at - frozen_at - self.timings['second_copy']:.3f} s, "
            f"start at {self.dest.name} {running_at - stopped_at:.3f} s")
        log(f"Downtime (frozen on {self.source.name} until running on {self.dest.name}): "
            f"{self.timings['downtime']:.3f} s")
        return {}

    def live_switch(self, transport, rel: str) -> dict:
        """CRIU: dump (which stops the source), copy the rest and the images, restore there."""
        ct, log = self.ct, self.log
        self.step("ready", tag=self.task.pk)
        images = agent_data_dir() / "checkpoints" / str(self.task.pk)
        images.mkdir(parents=True, exist_ok=True, mode=0o700)
        dumped_at = time.monotonic()
        self.phase = "frozen"
        run(["lxc-checkpoint", "-n", str(ct.ctid), "-P", str(self.lxc.lxcpath), "-s", "-D", str(images)],
            timeout=600)
        self.phase = "source_stopped"
        self.remember(checkpoint=str(images))
        network_down(ct, log)
        self.timings["second_copy"] = transport.rsync(self.source_view, f"{rel}/rootfs", log=log)
        transport.rsync(images, f"{rel}/checkpoint", log=log)
        self.step("finish", tag=self.task.pk, start=True, restore_checkpoint=True)
        self.phase = "dest_has_it"
        self.timings["downtime"] = time.monotonic() - dumped_at
        log(f"Downtime (checkpoint on {self.source.name} until restored on {self.dest.name}): "
            f"{self.timings['downtime']:.3f} s")
        return {}

    # -- after: commit, or put everything back -------------------------------------------------------
    def commit(self, result: dict, total: float) -> None:
        from metrics.models import ContainerEvent
        ct, log = self.ct, self.log
        running = self.was_running
        from storage.services import image_pool
        Container.objects.filter(pk=ct.pk).update(
            host=self.dest, status=ContainerStatus.RUNNING if running else ContainerStatus.STOPPED,
            status_changed_at=timezone.now(), storage=image_pool(self.dest))  # its copy there is an image
        ct.host = self.dest
        self.phase = "committed"
        self.remember()
        message = (f"Migrated {'online' if self.online and running else 'offline'} from {self.source.name} "
                   f"to {self.dest.name} in {total:.1f} s")
        if "downtime" in self.timings:
            message += f"; downtime {self.timings['downtime']:.3f} s"
        ContainerEvent.objects.create(container=ct, ctid=ct.ctid, tenant=ct.tenant, host=self.dest,
                                      kind="migration", message=message[:300])
        log(message)
        self.task.set_progress(95)
        try:
            if self.remove_source:
                self.lxc.destroy(ct.ctid)
                log(f"Removed CT {ct.ctid} from {self.source.name}")
            else:
                kept = self.lxc.set_aside(ct.ctid)
                log(f"Kept the source copy on {self.source.name} as {kept} (-r no)")
        except Exception as exc:  # the container is safely on the destination; say what is left
            log(f"WARNING: could not remove the source copy of CT {ct.ctid}: {exc}")

    def rollback(self, exc: BaseException) -> None:
        ct, log = self.ct, self.log
        log(f"Migration failed while {self.phase.replace('_', ' ')}: {exc}")
        if isinstance(exc, DestinationUnknown):
            # The destination may be starting it; starting it here too could run it twice.
            record_state(ct, "UNKNOWN")
            log(f"NOT restarting CT {ct.ctid} on {self.source.name}: {self.dest.name} may be running it. "
                f"Its agent settles this when it runs again; check {self.dest.name} first.")
            return
        try:
            # What LXC says now decides, not where the migration thought it was.
            state = self.lxc.state(ct.ctid)
            if state == "FROZEN":
                self.lxc.unfreeze(ct.ctid)
                log(f"CT {ct.ctid} thawed on {self.source.name}: it runs on there")
            elif state == "STOPPED" and self.was_running:
                self.restart_source()
        finally:
            self.abort_destination()
            refresh_state(ct, self.lxc)

    def restart_source(self) -> None:
        ct, log = self.ct, self.log
        checkpoint = (self.task.result or {}).get("checkpoint") if isinstance(self.task.result, dict) else None
        self.lxc.write_config(spec_for(ct))
        self.lxc.start(ct.ctid)
        network_up(ct, self.lxc, log)
        log(f"CT {ct.ctid} started again on {self.source.name}" + (" (from scratch, not from the checkpoint)"
                                                                   if checkpoint else ""))

    def abort_destination(self) -> None:
        try:
            self.step("abort", tag=self.task.pk, keep=self.keep_dst, ctid=self.ct.ctid)
            self.log(f"The copy on {self.dest.name} was " + ("kept for the next attempt (--keep-dst)"
                                                             if self.keep_dst else "removed"))
        except Exception as exc:
            self.log(f"The copy on {self.dest.name} could not be removed now ({exc}); its agent removes it "
                     "when it starts again")


@handler(TaskType.CT_MIGRATE)
@needs_rootfs
def migrate(task, log):
    return Migration(task, log).run()


@handler(TaskType.HOST_EVACUATE)
def evacuate(task, log):
    """Migrate every container off this host, one at a time, each to the host placement picks.
    Each migration is its own task (and row); this agent runs them in turn, in this job."""
    from hosts.placement import pick_host
    from tasks.runner import run_task
    from tasks.services import TaskError
    from .services import migrate_container
    cts = list(Container.objects.filter(host=task.host).order_by("ctid"))
    log(f"Evacuating {len(cts)} container(s) from {task.host.name}")
    failed = []
    for done, ct in enumerate(cts):
        task.set_progress(int(100 * done / len(cts)))
        try:
            dest = pick_host(ram_mb=ct.ram_mb, cpus=ct.cpus, disk_mb=ct.disk_mb, exclude=(task.host_id,))
            child = migrate_container(ct, None, dest, online=bool(task.params.get("online", True)), queue=False)
        except TaskError as exc:
            failed.append(f"CT {ct.ctid}: {exc}")
            log(f"CT {ct.ctid} not moved: {exc}")
            continue
        log(f"CT {ct.ctid} → {dest.name} (task #{child.pk})")
        run_task(child.pk)
        child.refresh_from_db()
        if child.status != TaskStatus.OK:
            failed.append(f"CT {ct.ctid}: {child.error}")
            log(f"CT {ct.ctid} stays on {task.host.name}: {child.error}")
        else:
            downtime = (child.result or {}).get("downtime_seconds")
            log(f"CT {ct.ctid} is on {dest.name}" + (f" (downtime {downtime:.3f} s)" if downtime is not None else ""))
    moved = len(cts) - len(failed)
    if failed:
        raise TaskFailed(f"{moved} of {len(cts)} container(s) moved; not moved: " + "; ".join(failed))
    log(f"All {moved} container(s) moved; {task.host.name} is empty and stays drained")
    return {"moved": moved}


# -- the destination's side ----------------------------------------------------------------------------
@handler(TaskType.CT_MIGRATE_IN)
def receive(task, log):
    import os
    params = task.params
    lxc = lxc_for(task.host)
    tag = int(params["migration"])
    ct = _container(task)
    step = params.get("step")
    if step == "prepare":
        need = int(params.get("need_bytes") or 0)
        lxc.lxcpath.mkdir(parents=True, exist_ok=True)
        st = os.statvfs(lxc.lxcpath)
        free = st.f_bavail * st.f_frsize
        # The files, plus the new filesystem's own log and metadata.
        wanted = need + need // 20 + 80 * MIB
        if free < wanted:
            raise TaskFailed(f"not enough disk space on {task.host.name}: {free // MIB} MiB free in "
                             f"{lxc.lxcpath}, CT {ct.ctid} needs about {wanted // MIB} MiB")
        kept = [c for c in lxc.incoming_copies() if c[0] == ct.ctid and c[2]]
        incoming = lxc.prepare_incoming(ct.ctid, tag, params.get("disk_mb"), params.get("diskinodes"), log)
        log(f"Ready to receive CT {ct.ctid} in {incoming}")
        return {"dir": incoming.name, "reused": bool(kept)}
    if step == "ready":
        incoming = lxc.incoming(ct.ctid, tag)
        if not (incoming / "rootfs").is_dir():
            raise TaskFailed(f"{incoming} is gone")
        return {"ok": True}
    if step == "finish":
        spec = spec_for(ct)
        lxc.finish_incoming(spec, tag)
        if not params.get("start"):
            disk = lxc.disk(ct.ctid)
            if ct.unmounted and disk:  # as vzctl umount left it at the source
                disk.umount()
            log(f"CT {ct.ctid} is here, stopped" + (" and unmounted" if ct.unmounted and disk else ""))
            return {"state": "STOPPED"}
        try:
            if params.get("restore_checkpoint"):
                images = lxc.path(ct.ctid) / "checkpoint"
                run(["lxc-checkpoint", "-n", str(ct.ctid), "-P", str(lxc.lxcpath), "-r", "-D", str(images)],
                    timeout=600)
            else:
                lxc.start(ct.ctid)
            network_up(ct, lxc, log)
        except BaseException:
            # Never leave it running here when the source may start it again.
            lxc.kill(ct.ctid)
            network_down(ct, log)
            lxc.return_to_incoming(ct.ctid, tag)
            raise
        log(f"CT {ct.ctid} is running on {task.host.name}")
        return {"state": "RUNNING"}
    if step == "abort":
        if lxc.state(ct.ctid) != ABSENT and Container.objects.filter(pk=ct.pk, host=task.host).exists():
            raise TaskFailed(f"CT {ct.ctid} belongs to {task.host.name} now; not removing it")
        if lxc.exists(ct.ctid) and ct.host_id != task.host.pk:
            lxc.kill(ct.ctid)
            lxc.return_to_incoming(ct.ctid, tag)
        found = lxc.discard_incoming(ct.ctid, tag, keep=bool(params.get("keep")))
        log(("Kept" if params.get("keep") else "Removed") + f" the incoming copy of CT {ct.ctid}"
            if found else "Nothing to remove")
        return {"removed": found}
    raise TaskFailed(f"unknown migration step {step!r}")


def clean_incoming(lxc: Lxc, log) -> None:
    """At agent start: remove incoming copies whose migration is over (unless kept with --keep-dst)."""
    for ctid, tag, kept in lxc.incoming_copies():
        active = Task.objects.filter(pk=tag, status__in=[TaskStatus.QUEUED, TaskStatus.RUNNING]).exists()
        if kept or active:
            continue
        lxc.discard_incoming(ctid, tag)
        log(f"removed the incoming copy of CT {ctid} left by migration task {tag}")


def recover_interrupted(task: Task, lxc: Lxc, log) -> None:
    """The source agent died during a migration (called at its next start, task already failed)."""
    from .services import start_container
    ct = task.container
    if task.type == TaskType.CT_MIGRATE_IN:
        # Cut off while starting it here: it is not ours (the move was never committed), so it must not run.
        if ct is not None and ct.host_id != task.host_id and task.params.get("step") == "finish" and lxc.exists(ct.ctid):
            lxc.kill(ct.ctid)
            network_down(ct, log)
            lxc.return_to_incoming(ct.ctid, int(task.params["migration"]))
            log(f"CT {ct.ctid} was being started here by a migration that never completed; stopped and removed")
        return
    state = task.result if isinstance(task.result, dict) else {}
    if ct is None or ct.host_id != task.host_id:
        if ct is not None and lxc.exists(ct.ctid):
            lxc.destroy(ct.ctid) if task.params.get("remove_source", True) else lxc.set_aside(ct.ctid)
            log(f"CT {ct.ctid} had moved before the agent stopped; removed the source copy")
        return
    dest_started = Task.objects.filter(type=TaskType.CT_MIGRATE_IN, params__migration=task.pk,
                                       params__step="finish", status=TaskStatus.OK).exists()
    if dest_started:
        from storage.services import image_pool
        Container.objects.filter(pk=ct.pk).update(host_id=task.params["dest_host_id"],
                                                  status=ContainerStatus.RUNNING if state.get("was_running")
                                                  else ContainerStatus.STOPPED,
                                                  storage=image_pool(Host.objects.get(pk=task.params["dest_host_id"])))
        lxc.kill(ct.ctid)
        lxc.destroy(ct.ctid)
        log(f"CT {ct.ctid} had reached its destination; committed the move and removed the source copy")
        return
    current = lxc.state(ct.ctid)
    if current == "FROZEN":
        lxc.unfreeze(ct.ctid)
        current = "RUNNING"
    refresh_state(ct, lxc, known=current)
    dest = Host.objects.filter(pk=task.params.get("dest_host_id")).first()
    if dest is not None:
        submit_task(type=TaskType.CT_MIGRATE_IN, host=dest, container=ct,
                    params={"step": "abort", "migration": task.pk, "keep": bool(task.params.get("keep_dst"))})
    if state.get("was_running") and current == "STOPPED":
        start_container(ct, None)
        log(f"CT {ct.ctid} was stopped by an interrupted migration; queued its start")
