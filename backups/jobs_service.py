"""Backup jobs: their rules (who may make which job), their schedule, and their runs.

The pages, the API and the scheduler all come through here. A job's run queues one backup task
per selected container, as the system (user None); the agent of each host runs its tasks one at
a time, so a run backs up one container at a time per host. `finish_runs` notices when all of a
run's tasks are over, applies the job's retention and sends the report, once.
"""
from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta

from croniter import CroniterBadCronError, CroniterBadDateError, croniter
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts import audit
from accounts.permissions import (administered_tenant_ids, manageable_containers, manages_all_containers,
                                  visible_backup_jobs)
from containers.models import Container
from panel.validators import is_ascii_number, messages, validate_title, whole_number
from containers.services import InvalidRequest, NotAllowed
from tasks.choices import ACTIVE_STATES, TaskStatus, TaskType
from tasks.models import Task
from tasks.services import TaskError
from tenancy.models import Tenant

from .models import Backup, BackupJob, BackupMode, BackupRun, BackupStorage, Compression
from .retention import RULES

logger = logging.getLogger(__name__)

# A run that was due longer ago than this was missed (the panel or its scheduler was down);
# anything younger is just a late pass and runs normally.
MISSED_AFTER = timedelta(minutes=10)
REPORT_WINDOW = timedelta(days=1)

CRON_ALIASES = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
JOB_FIELDS = ("name", "tenant", "schedule", "selection", "containers", "excluded", "mode", "compress", "storage",
              "mailto", "notify", "enabled", "run_missed", *RULES)


class JobInvalid(InvalidRequest):
    """A job's field is wrong; `field` names it (None: the job as a whole)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


# -- schedule -------------------------------------------------------------------------
def _cron(expr: str) -> str:
    expr = " ".join(str(expr or "").split())
    return CRON_ALIASES.get(expr.lower(), expr)


def validate_schedule(expr: str) -> str:
    """The schedule, tidied, if it is a five-field cron expression that fires; JobInvalid otherwise."""
    text = " ".join(str(expr or "").split())
    if not text:
        raise JobInvalid("Give a schedule in cron syntax: minute hour day-of-month month day-of-week, "
                         "like 30 2 * * * for 02:30 every day.", "schedule")
    cron = _cron(text)
    if len(cron.split()) != 5:
        raise JobInvalid(f"{text!r} is not a cron schedule: it needs five fields (minute hour day-of-month "
                         "month day-of-week), like 30 2 * * *.", "schedule")
    if not croniter.is_valid(cron):
        raise JobInvalid(f"{text!r} is not a valid cron schedule: minute is 0-59, hour 0-23, day 1-31, "
                         "month 1-12, weekday 0-7 (or names), with * , - and / as usual.", "schedule")
    try:
        next_run(text, timezone.now())
    except (CroniterBadDateError, CroniterBadCronError, ValueError):
        raise JobInvalid(f"{text!r} never fires (no such date); pick a day that exists.", "schedule") from None
    return text


def describe_schedule(expr: str) -> str:
    """The schedule in words, as cron-descriptor says it ("At 02:30 AM")."""
    from cron_descriptor import get_description
    try:
        return get_description(_cron(expr))
    except Exception:  # an old schedule that no longer parses: show it as it is
        return str(expr)


def next_run(expr: str, after: datetime) -> datetime:
    """The first time after `after` that the schedule fires, in the panel's time zone."""
    local = timezone.localtime(after).replace(second=0, microsecond=0)
    return croniter(_cron(expr), local).get_next(datetime)


# -- who may do what --------------------------------------------------------------------
def may_create_jobs(user) -> bool:
    """Admins and operators (global jobs and any tenant's), tenant admins (their tenants' jobs)."""
    return manages_all_containers(user) or bool(administered_tenant_ids(user))


def manageable_backup_jobs(user) -> QuerySet[BackupJob]:
    qs = visible_backup_jobs(user)
    if manages_all_containers(user):
        return qs
    return qs.filter(tenant_id__in=administered_tenant_ids(user))


def job_tenants(user) -> QuerySet[Tenant]:
    """Tenants the user may make jobs for."""
    if manages_all_containers(user):
        return Tenant.objects.all()
    return Tenant.objects.filter(pk__in=administered_tenant_ids(user))


def job_containers(user) -> QuerySet[Container]:
    """Containers the user may put in (or leave out of) a job."""
    qs = manageable_containers(user)
    if manages_all_containers(user):
        return qs
    return qs.filter(tenant_id__in=administered_tenant_ids(user))


def job_storages() -> QuerySet[BackupStorage]:
    return BackupStorage.objects.filter(enabled=True).select_related("host")


class StorageChoice:
    """How a storage is named in a form: with host and path for who sees hosts, by name for tenants."""

    def __init__(self, user):
        from accounts.permissions import sees_infrastructure
        self.full = sees_infrastructure(user)

    def __call__(self, storage: BackupStorage) -> str:
        return str(storage) if self.full else storage.name


def get_job_for_user(user, pk, manage: bool = False) -> BackupJob:
    """The job `pk` if `user` may see it: 404 otherwise; 403 if `manage` and they may only look."""
    from django.core.exceptions import PermissionDenied
    from django.http import Http404
    try:
        job = visible_backup_jobs(user).get(pk=int(pk))
    except (BackupJob.DoesNotExist, ValueError, TypeError):
        raise Http404(f"No backup job {pk}") from None
    if manage and not manageable_backup_jobs(user).filter(pk=job.pk).exists():
        raise PermissionDenied(f"You may look at backup job {job.name} but not change it.")
    return job


def _check_job_manage(job: BackupJob, user) -> None:
    if user is not None and not manageable_backup_jobs(user).filter(pk=job.pk).exists():
        raise NotAllowed(f"You may not change backup job {job.name}.")


# -- validation -------------------------------------------------------------------------
def parse_mailto(text: str) -> list[str]:
    """The addresses in `text` (comma, semicolon or space separated), each a valid address."""
    addresses = [a for a in re.split(r"[,;\s]+", str(text or "")) if a]
    bad = []
    for address in addresses:
        try:
            validate_email(address)
        except ValidationError:
            bad.append(address)
    if bad:
        raise JobInvalid(f"Not an email address: {', '.join(bad)}. Give addresses like ops@example.org, "
                         "separated by commas.", "mailto")
    seen = []
    for address in addresses:
        if address.lower() not in (s.lower() for s in seen):
            seen.append(address)
    if len(", ".join(seen)) > 500:
        raise JobInvalid("At most 500 characters of addresses.", "mailto")
    return seen


def _as_containers(values, field: str, user=None) -> list[Container]:
    """Containers from model instances or CTIDs (ints or strings), looked up among those `user` may put
    in a job: a CTID that does not exist and one that is not theirs answer alike."""
    usable = Container.objects.all() if user is None else job_containers(user)
    out = []
    for value in values or ():
        if isinstance(value, Container):
            out.append(value)
            continue
        ct = usable.filter(ctid=int(value)).first() if is_ascii_number(str(value)) else None
        if ct is None:
            raise JobInvalid(f"There is no container {value} you may back up.", field)
        out.append(ct)
    return out


def _validate(user, data: dict, job: BackupJob | None = None) -> dict:
    """Check and tidy the fields of a job for `user` (None: the system); raise JobInvalid/NotAllowed."""
    clean = dict(data)
    if "name" in clean:
        clean["name"] = str(clean["name"] or "").strip()
        try:
            validate_title(clean["name"], "job name", 100)
        except ValidationError as exc:
            raise JobInvalid(messages(exc), "name") from None
    if "schedule" in clean:
        clean["schedule"] = validate_schedule(clean["schedule"])
    if "mailto" in clean:
        clean["mailto"] = ", ".join(parse_mailto(clean["mailto"]))
    for key, choices in (("selection", BackupJob.Selection), ("mode", BackupMode), ("compress", Compression),
                         ("notify", BackupJob.Notify)):
        if key in clean and clean[key] not in choices.values:
            raise JobInvalid(f"Unknown {key} {clean[key]!r}; one of {', '.join(choices.values)}.", key)
    for key in RULES:
        if key in clean and clean[key] not in (None, ""):
            try:
                clean[key] = whole_number(clean[key], key.replace("_", "-"), 0, 100_000)
            except ValidationError as exc:
                raise JobInvalid(f"{messages(exc)} Leave it empty not to use it.", key) from None
        elif key in clean:
            clean[key] = None
    if "storage" in clean and clean["storage"] is not None:
        storage = clean["storage"]
        if not isinstance(storage, BackupStorage):
            storage = BackupStorage.objects.filter(pk=int(storage)).first() if is_ascii_number(str(storage)) else None
            if storage is None:
                raise JobInvalid(f"There is no storage {clean['storage']}.", "storage")
        if not storage.enabled and (job is None or job.storage_id != storage.pk):
            raise JobInvalid(f"Storage {storage.name} is disabled.", "storage")
        clean["storage"] = storage

    # The tenant, and the containers, within what the user may manage.
    tenant = clean["tenant"] if "tenant" in clean else (job.tenant if job else None)
    if tenant is not None and not isinstance(tenant, Tenant):
        # Among the tenants the user may use: one answer whether a tenant does not exist or is not theirs.
        usable = Tenant.objects.all() if user is None or manages_all_containers(user) \
            else Tenant.objects.filter(pk__in=administered_tenant_ids(user))
        found = usable.filter(Q(slug=str(tenant)) | Q(pk=int(tenant) if is_ascii_number(str(tenant)) else None))
        tenant = found.first()
        if tenant is None:
            raise JobInvalid(f"There is no tenant {clean['tenant']} you may make backup jobs for.", "tenant")
    if user is not None and not manages_all_containers(user):
        allowed = administered_tenant_ids(user)
        if tenant is None:
            if len(allowed) == 1:
                tenant = Tenant.objects.get(pk=allowed[0])
            else:
                raise JobInvalid("Pick the tenant the job is for.", "tenant")
        if tenant.pk not in allowed:
            raise NotAllowed(f"You may not make backup jobs for tenant {tenant.slug}.")
    clean["tenant"] = tenant
    selection = clean.get("selection", job.selection if job else BackupJob.Selection.LIST)
    if selection == BackupJob.Selection.TENANT and tenant is None:
        raise JobInvalid("A job backing up a tenant's containers needs the tenant.", "tenant")
    if job is not None and "tenant" in data and tenant != job.tenant:  # a job moved to another tenant: check what it holds again
        for field in ("containers", "excluded"):
            clean.setdefault(field, list(getattr(job, field).all()))
    for field in ("containers", "excluded"):
        if field not in clean:
            continue
        cts = _as_containers(clean[field], field, user)
        if user is not None:
            mine = set(job_containers(user).filter(pk__in=[c.pk for c in cts]).values_list("pk", flat=True))
            for ct in cts:
                if ct.pk not in mine:
                    raise NotAllowed(f"You may not back up container {ct.ctid} in a job"
                                     + (f" of tenant {tenant.slug}." if tenant else "."))
        if tenant is not None:
            for ct in cts:
                if ct.tenant_id != tenant.pk:
                    raise JobInvalid(f"Container {ct.ctid} does not belong to tenant {tenant.slug}; a job of "
                                     f"{tenant.slug} backs up only its containers.", field)
        clean[field] = cts
    containers = clean.get("containers", list(job.containers.all()) if job else [])
    if selection == BackupJob.Selection.LIST and not containers:
        raise JobInvalid("Pick the containers to back up (or select all, or a tenant's).", "containers")
    return clean


def _save(job: BackupJob, clean: dict) -> BackupJob:
    m2m = {k: clean.pop(k) for k in ("containers", "excluded") if k in clean}
    for key, value in clean.items():
        setattr(job, key, value)
    if job.enabled:
        job.next_run_at = next_run(job.schedule, timezone.now())
    else:
        job.next_run_at = None
    job.save()
    for key, cts in m2m.items():
        getattr(job, key).set(cts)
    return job


def create_job(user, **fields) -> BackupJob:
    """A new job; the owner is `user`. Unknown fields are refused."""
    unknown = set(fields) - set(JOB_FIELDS)
    if unknown:
        raise JobInvalid(f"Unknown field {', '.join(sorted(unknown))}.")
    if user is not None and not may_create_jobs(user):
        audit.record(user, "backupjob.create", None, "refused", "not allowed to make backup jobs")
        raise NotAllowed("Only administrators and tenant administrators make backup jobs.")
    for required in ("name", "schedule"):
        fields.setdefault(required, "")
    try:
        clean = _validate(user, fields)
        with transaction.atomic():
            job = _save(BackupJob(owner=user if getattr(user, "pk", None) else None), clean)
    except TaskError as exc:
        audit.record(user, "backupjob.create", None, "refused", str(exc))
        raise
    audit.record(user, "backupjob.create", job, "ok", f"{job.schedule}; {describe_selection(job)}")
    return job


def update_job(job: BackupJob, user, **fields) -> BackupJob:
    unknown = set(fields) - set(JOB_FIELDS)
    if unknown:
        raise JobInvalid(f"Unknown field {', '.join(sorted(unknown))}.")
    try:
        _check_job_manage(job, user)
        clean = _validate(user, fields, job)
        with transaction.atomic():
            job = _save(job, clean)
    except TaskError as exc:
        audit.record(user, "backupjob.update", job, "refused", str(exc))
        raise
    audit.record(user, "backupjob.update", job, "ok", ", ".join(sorted(fields)))
    return job


def delete_job(job: BackupJob, user) -> None:
    try:
        _check_job_manage(job, user)
    except TaskError as exc:
        audit.record(user, "backupjob.delete", job, "refused", str(exc))
        raise
    audit.record(user, "backupjob.delete", job, "ok", job.name)
    job.delete()


# -- what a job backs up ----------------------------------------------------------------
def selected_containers(job: BackupJob) -> QuerySet[Container]:
    """The containers a run of `job` backs up now: all, the tenant's, or the list; less the excluded.
    A tenant's job never reaches beyond its tenant, whatever happened to the containers since."""
    qs = Container.objects.select_related("host", "tenant")
    if job.selection == BackupJob.Selection.LIST:
        qs = qs.filter(pk__in=job.containers.values("pk"))
    if job.tenant_id is not None:
        qs = qs.filter(tenant_id=job.tenant_id)
    return qs.exclude(pk__in=job.excluded.values("pk")).order_by("host__name", "ctid")


def describe_selection(job: BackupJob) -> str:
    if job.selection == BackupJob.Selection.ALL:
        text = f"all containers of {job.tenant.slug}" if job.tenant_id else "all containers"
    elif job.selection == BackupJob.Selection.TENANT:
        text = f"containers of {job.tenant.slug}" if job.tenant_id else "a tenant's containers"
    else:
        ctids = [str(c) for c in job.containers.order_by("ctid").values_list("ctid", flat=True)]
        text = "CT " + ", ".join(ctids) if ctids else "no containers"
    excluded = [str(c) for c in job.excluded.order_by("ctid").values_list("ctid", flat=True)]
    if excluded and job.selection != BackupJob.Selection.LIST:
        text += " except " + ", ".join(excluded)
    return text


# -- runs -------------------------------------------------------------------------------
def _refused_task(ct: Container, job: BackupJob, run: BackupRun, reason: str, now) -> Task:
    """A finished, failed backup task that says why the container was not backed up, so the run's
    report and the container's history both show it. It is never queued."""
    log = Task.format_log(f"Backup job {job.name}: not backed up") + Task.format_log(f"ERROR: {reason}")
    return Task.objects.create(type=TaskType.CT_BACKUP, container=ct, ctid=ct.ctid, host=ct.host,
                               tenant_id=ct.tenant_id, status=TaskStatus.FAILED, error=reason, log=log,
                               params={"job": job.pk, "run": run.pk, "refused": True}, created_at=now,
                               finished_at=now)


def start_run(job: BackupJob, now=None) -> BackupRun:
    """Queue a backup of each selected container; a container refused (locked, in the wrong state,
    over quota...) gets a failed task with the reason, and the run goes on."""
    from .services import backup_container
    now = now or timezone.now()
    run = BackupRun.objects.create(job=job, started_at=now)
    for ct in selected_containers(job):
        try:
            task = backup_container(ct, None, mode=job.mode, compress=job.compress, storage=job.storage,
                                    notes=f"backup job {job.name}"[:200], job=job, run=run)
        except TaskError as exc:
            task = _refused_task(ct, job, run, str(exc), now)
        run.tasks.add(task)
    return run


def run_now(job: BackupJob, user) -> BackupRun:
    """Start a run at once (the "Run now" button); the schedule is not changed."""
    try:
        _check_job_manage(job, user)
    except TaskError as exc:
        audit.record(user, "backupjob.run", job, "refused", str(exc))
        raise
    now = timezone.now()
    run = start_run(job, now)
    BackupJob.objects.filter(pk=job.pk).update(last_run_at=now)
    job.last_run_at = now
    audit.record(user, "backupjob.run", job, "ok", f"run #{run.pk}, {run.tasks.count()} containers")
    return run


def due_runs(now=None) -> list[str]:
    """Start the runs of enabled jobs that are due. A job that missed runs while the panel was down
    runs once if it says run_missed, otherwise it waits for its next time."""
    now = now or timezone.now()
    done = []
    for job in BackupJob.objects.filter(enabled=True, next_run_at__isnull=True):
        BackupJob.objects.filter(pk=job.pk, next_run_at__isnull=True).update(next_run_at=_next_or_none(job, now))
    for job in BackupJob.objects.filter(enabled=True, next_run_at__lte=now).select_related("tenant", "storage"):
        due_at = job.next_run_at
        following = _next_or_none(job, now)
        missed = now - due_at > MISSED_AFTER
        run_it = not missed or job.run_missed
        # Claim the job by a conditional UPDATE: a second pass (or scheduler) does not run it again.
        claimed = BackupJob.objects.filter(pk=job.pk, enabled=True, next_run_at=due_at).update(
            next_run_at=following, **({"last_run_at": now} if run_it else {}))
        if not claimed:
            continue
        when = timezone.localtime(due_at).strftime("%Y-%m-%d %H:%M")
        nxt = timezone.localtime(following).strftime("%Y-%m-%d %H:%M") if following else "never"
        if not run_it:
            audit.record(None, "backupjob.missed", job, "ok",
                         f"the run due at {when} was missed while the panel was down; not run "
                         f"(run_missed is off); next run at {nxt}", username="scheduler")
            done.append(f"backup job {job.name}: missed run at {when} skipped, next at {nxt}")
            continue
        try:
            run = start_run(job, now)
        except Exception as exc:  # one broken job must not stop the others
            logger.exception("backup job %s could not start", job.pk)
            audit.record(None, "backupjob.run", job, "failed", str(exc), username="scheduler")
            continue
        note = f" (missed at {when}, run once now)" if missed else ""
        audit.record(None, "backupjob.run", job, "ok", f"run #{run.pk}, {run.tasks.count()} containers{note}; "
                     f"next run at {nxt}", username="scheduler")
        done.append(f"backup job {job.name}: run #{run.pk} started{note}, {run.tasks.count()} containers")
    return done


def _next_or_none(job: BackupJob, now):
    try:
        return next_run(job.schedule, now)
    except Exception:  # a schedule that no longer parses: the job stops until someone fixes it
        logger.exception("backup job %s: bad schedule %r", job.pk, job.schedule)
        return None


def finish_runs(now=None) -> list[str]:
    """Close the runs whose tasks are all over: status ok or failed, retention applied, report sent
    (each exactly once, claimed by conditional UPDATEs)."""
    from .report import send_report
    now = now or timezone.now()
    done = []
    for run in BackupRun.objects.filter(status="running").select_related("job"):
        statuses = list(run.tasks.values_list("status", flat=True))
        if any(s in ACTIVE_STATES for s in statuses):
            continue
        status = "ok" if all(s == TaskStatus.OK for s in statuses) else "failed"
        if not BackupRun.objects.filter(pk=run.pk, status="running").update(status=status, finished_at=now):
            continue
        run.status, run.finished_at = status, now
        done.append(f"backup job {run.job.name}: run #{run.pk} {status}")
        try:
            prune_after_run(run)
        except Exception:
            logger.exception("retention after run %s failed", run.pk)
    # Reports still owed: runs over (in the last day, so mailto added later does not flood anyone)
    # whose job has addresses and wants to hear about this outcome.
    owed = (BackupRun.objects.filter(report_sent_at__isnull=True, finished_at__gte=now - REPORT_WINDOW)
            .exclude(status="running").exclude(job__mailto="")
            .filter(Q(job__notify=BackupJob.Notify.ALWAYS) | Q(status="failed")).select_related("job"))
    for run in owed:
        if not BackupRun.objects.filter(pk=run.pk, report_sent_at__isnull=True).update(report_sent_at=now):
            continue
        try:
            send_report(run)
        except Exception as exc:
            logger.exception("report of run %s not sent", run.pk)
            audit.record(None, "backupjob.report", run.job, "failed", f"run #{run.pk}: {exc}", username="scheduler")
        else:
            done.append(f"backup job {run.job.name}: report of run #{run.pk} sent")
    return done


def prune_after_run(run: BackupRun) -> list:
    """Apply the job's retention to each container backed up well in this run: its backups in the
    same place (host and storage path); protected ones are kept. Queues delete tasks."""
    from .services import prune_backups
    retention = run.job.retention()
    if not any(retention.values()):
        return []
    queued = []
    made = Backup.objects.filter(task__in=run.tasks.filter(status=TaskStatus.OK))
    # Backups whose deletion is queued already (an earlier prune) are going: not twice.
    going = [pk for pk in Task.objects.filter(type=TaskType.BACKUP_DELETE, status__in=ACTIVE_STATES)
             .values_list("params__backup", flat=True) if pk is not None]
    for backup in made:
        group = (Backup.objects.filter(ctid=backup.ctid, host_id=backup.host_id, storage_path=backup.storage_path)
                 .exclude(pk__in=going))
        try:
            _keep, remove, tasks = prune_backups(None, group, retention, dry_run=False)
        except TaskError as exc:
            logger.warning("retention of CT %s after run %s: %s", backup.ctid, run.pk, exc)
            continue
        queued += tasks
        for task in run.tasks.filter(ctid=backup.ctid):
            names = ", ".join(b.filename for b in remove) or "nothing"
            task.write_log(Task.format_log(f"prune with {_retention_text(retention)}: removing {names}"))
    return queued


def _retention_text(retention: dict) -> str:
    return ", ".join(f"{k.replace('_', '-')}={v}" for k, v in retention.items() if v)


def last_runs(jobs) -> dict:
    """{job id: its latest run} for the job list."""
    latest = {}
    for run in BackupRun.objects.filter(job__in=jobs).order_by("job_id", "-started_at"):
        latest.setdefault(run.job_id, run)
    return latest


def run_rows(run: BackupRun) -> list[dict]:
    """One line per container of a run: CTID, name, status, time, size, file, error."""
    return task_rows(run.tasks.all())


def task_rows(tasks) -> list[dict]:
    """One line per backup task: CTID, name, status, time, size, file, error."""
    tasks = Task.objects.filter(pk__in=[t.pk for t in tasks])
    backups = {b.task_id: b for b in Backup.objects.filter(task__in=tasks)}
    rows = []
    for task in tasks.select_related("container", "host").order_by("host__name", "ctid", "pk"):
        result = task.result or {}
        backup = backups.get(task.pk)
        seconds = None
        if task.started_at and task.finished_at:
            seconds = max(0, int((task.finished_at - task.started_at).total_seconds()))
        filename = ""
        if backup is not None:
            filename = backup.path
        elif result.get("filename"):
            dump_dir = (task.params or {}).get("dump_dir") or ""
            filename = f"{dump_dir.rstrip('/')}/{result['filename']}" if dump_dir else result["filename"]
        ct = task.container
        rows.append({
            "task": task, "ctid": task.ctid, "host": task.host.name,
            "name": (ct.name or ct.hostname) if ct else "",
            "status": task.status, "ok": task.status == TaskStatus.OK,
            "seconds": seconds, "size": backup.size if backup else result.get("size"),
            "filename": filename, "error": task.error.strip().splitlines()[-1] if task.error.strip() else
            ("" if task.status == TaskStatus.OK else task.status),
        })
    return rows
