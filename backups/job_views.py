"""Backup job pages (/backups/jobs/): thin views over accounts.permissions and backups.jobs_service."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.permissions import visible_backup_jobs
from panel.forms import ActionForm, form_response

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

    def act(form):
        job = jobs.create_job(request.user, **form.job_fields())
        messages.success(request, f"Backup job {job.name} created; next run {_when(job)}.")
        return redirect("backup-job-detail", job.pk)

    def page(form, status=200):
        return render(request, "backups/job_form.html", {"form": form, "job": None}, status=status)
    if request.method == "POST":
        return form_response(request, BackupJobForm(request.user, request.POST), act, page)
    return page(BackupJobForm(request.user))


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
    if request.method != "POST":
        return job_page(request, job)
    if not jobs.manageable_backup_jobs(request.user).filter(pk=job.pk).exists():
        raise PermissionDenied(f"You may look at backup job {job.name} but not change it.")

    def act(form):
        saved = jobs.update_job(job, request.user, **form.job_fields())
        messages.success(request, f"Backup job {saved.name} saved; next run {_when(saved)}.")
        return redirect("backup-job-detail", saved.pk)
    return form_response(request, BackupJobForm(request.user, request.POST, job=job), act,
                         lambda form, status: job_page(request, job, status, form=form))


def job_page(request, job, status: int = 200, form=None, run_form=None):
    """The job's page: its form (for who may change it), its runs; a form in error comes bound."""
    if status != 200:
        job.refresh_from_db()  # a refused update may have touched the instance, not the row
    can_manage = jobs.manageable_backup_jobs(request.user).filter(pk=job.pk).exists()
    if form is None and can_manage:
        form = BackupJobForm(request.user, job=job)
    runs = [_run_views(run) for run in job.runs.all()[:10]]
    return render(request, "backups/job_detail.html", {
        "job": job, "form": form, "can_manage": can_manage, "runs": runs, "run_form": run_form,
        "schedule_text": jobs.describe_schedule(job.schedule), "selection_text": jobs.describe_selection(job),
        "selected": list(jobs.selected_containers(job)),
    }, status=status)


@login_required
@require_POST
def job_run(request, pk):
    job = jobs.get_job_for_user(request.user, pk, manage=True)

    def act(form):
        run = jobs.run_now(job, request.user)
        messages.success(request, f"Run #{run.pk} of {job.name} started: {run.tasks.count()} containers.")
        return redirect("backup-job-detail", job.pk)
    return form_response(request, ActionForm(request.POST), act,
                         lambda form, status: job_page(request, job, status, run_form=form))


@login_required
def job_delete(request, pk):
    job = jobs.get_job_for_user(request.user, pk, manage=True)

    def act(form):
        name = job.name
        jobs.delete_job(job, request.user)
        messages.success(request, f"Backup job {name} deleted.")
        return redirect("backup-job-list")

    def page(form, status=200):
        return render(request, "backups/job_delete.html", {"job": job, "form": form,
                                                            "selection_text": jobs.describe_selection(job)},
                      status=status)
    if request.method == "POST":
        return form_response(request, DeleteJobForm(job, request.POST), act, page)
    return page(DeleteJobForm(job))
