"""Backup job pages (/backups/jobs/): thin views over accounts.permissions and backups.jobs_service."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.permissions import visible_backup_jobs
from tasks.services import TaskError

from . import jobs_service as jobs
from .forms import BackupJobForm, DeleteJobForm
from .report import duration, human_size


def _rows(user, job_list):
    latest = jobs.last_runs(job_list)
    manageable = set(jobs.manageable_backup_jobs(user).values_list("pk", flat=True))
    return [{"job": job, "schedule_text": jobs.describe_schedule(job.schedule),
             "selection_text": jobs.describe_selection(job), "last_run": latest.get(job.pk),
             "can_manage": job.pk in manageable} for job in job_list]


@login_required
def job_list(request):
    job_list = list(visible_backup_jobs(request.user).prefetch_related("containers", "excluded"))
    return render(request, "backups/job_list.html", {
        "rows": _rows(request.user, job_list), "can_create": jobs.may_create_jobs(request.user)})


@login_required
def job_create(request):
    if not jobs.may_create_jobs(request.user):
        raise PermissionDenied("Only administrators and tenant administrators make backup jobs.")
    form = BackupJobForm(request.user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            job = jobs.create_job(request.user, **form.job_fields())
        except TaskError as exc:
            form.apply_error(exc)
        else:
            messages.success(request, f"Backup job {job.name} created; next run {_when(job)}.")
            return redirect("backup-job-detail", job.pk)
    return render(request, "backups/job_form.html", {"form": form, "job": None})


def _when(job) -> str:
    from django.utils import timezone
    return timezone.localtime(job.next_run_at).strftime("%Y-%m-%d %H:%M") if job.next_run_at else "never (disabled)"


def _run_views(run):
    rows = jobs.run_rows(run)
    for r in rows:
        r["time_text"] = duration(r["seconds"])
        r["size_text"] = human_size(r["size"]) if r["ok"] else "-"
    return {"run": run, "rows": rows}


@login_required
def job_detail(request, pk):
    job = jobs.get_job_for_user(request.user, pk)
    can_manage = jobs.manageable_backup_jobs(request.user).filter(pk=job.pk).exists()
    form = None
    if request.method == "POST":
        if not can_manage:
            raise PermissionDenied(f"You may look at backup job {job.name} but not change it.")
        form = BackupJobForm(request.user, request.POST, job=job)
        if form.is_valid():
            try:
                job = jobs.update_job(job, request.user, **form.job_fields())
            except TaskError as exc:
                form.apply_error(exc)
            else:
                messages.success(request, f"Backup job {job.name} saved; next run {_when(job)}.")
                return redirect("backup-job-detail", job.pk)
    elif can_manage:
        form = BackupJobForm(request.user, job=job)
    runs = [_run_views(run) for run in job.runs.all()[:10]]
    return render(request, "backups/job_detail.html", {
        "job": job, "form": form, "can_manage": can_manage, "runs": runs,
        "schedule_text": jobs.describe_schedule(job.schedule), "selection_text": jobs.describe_selection(job),
        "selected": list(jobs.selected_containers(job)),
    }, status=400 if form is not None and form.errors else 200)


@login_required
@require_POST
def job_run(request, pk):
    job = jobs.get_job_for_user(request.user, pk, manage=True)
    try:
        run = jobs.run_now(job, request.user)
    except TaskError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Run #{run.pk} of {job.name} started: {run.tasks.count()} containers.")
    return redirect("backup-job-detail", job.pk)


@login_required
def job_delete(request, pk):
    job = jobs.get_job_for_user(request.user, pk, manage=True)
    form = DeleteJobForm(job, request.POST or None)
    if request.method == "POST" and form.is_valid():
        name = job.name
        try:
            jobs.delete_job(job, request.user)
        except TaskError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Backup job {name} deleted.")
            return redirect("backup-job-list")
    return render(request, "backups/job_delete.html", {"job": job, "form": form,
                                                        "selection_text": jobs.describe_selection(job)})
