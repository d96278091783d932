"""Backup jobs: validation and scope, pages and API, due runs, missed runs, the report through a real
SMTP server (aiosmtpd), retention after a run. No agent: a finished backup is simulated by doing to
the queued Task rows what the agent does (running, log lines, the Backup row, then finish_task)."""
import re
import socket
import time
from datetime import timedelta
from email import message_from_bytes, policy

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import AuditEvent
from backups import jobs_service as jobs
from backups.models import Backup, BackupJob, BackupRun, BackupStorage
from backups.report import duration, human_size
from containers.models import Container
from containers.services import NotAllowed
from hosts.models import Host
from tasks.choices import TaskStatus, TaskType
from tasks.models import Task
from tasks.services import finish_task, submit_task


# -- fixtures and helpers -------------------------------------------------------------------
def make_ct(ctid, tenant, owner, host, template_name, **kw):
    return Container.objects.create(ctid=ctid, name=kw.pop("name", f"ct{ctid}"), hostname=f"ct{ctid}.example",
                                    ostemplate=template_name, host=host, tenant=tenant, owner=owner,
                                    status=kw.pop("status", "stopped"), **kw)


@pytest.fixture
def acme_cts(student_ct, acme, people, host, template_name):
    """501 (student's), 502 and 503 in acme."""
    return [student_ct, make_ct(502, acme, people["peer"], host, template_name),
            make_ct(503, acme, people["tadmin"], host, template_name)]


@pytest.fixture
def other_ct(other_tenant, people, host, template_name):
    return make_ct(601, other_tenant, people["outsider"], host, template_name)


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def acme_job(people, cts, **kw) -> BackupJob:
    fields = {"name": "nightly", "schedule": "30 2 * * *", "selection": "list", "containers": cts,
              "mailto": "ops@example.test", **kw}
    return jobs.create_job(people["tadmin"], **fields)


def due(job, ago=timedelta(seconds=30)):
    """Make `job` due now (as if its time came ago)."""
    BackupJob.objects.filter(pk=job.pk).update(next_run_at=timezone.now() - ago)
    job.refresh_from_db()
    return job


def agent_runs(task, ok=True, seconds=83, size=1258291, lines=("INFO: starting backup", "INFO: done"), error=""):
    """What the agent does with a backup task: run it, log, write the Backup row, finish it."""
    start = timezone.now() - timedelta(seconds=seconds)
    Task.objects.filter(pk=task.pk).update(status=TaskStatus.RUNNING, started_at=start)
    task.refresh_from_db()
    for line in lines:
        task.append_log(line)
    result = None
    if ok:
        filename = f"vzdump-lxc-{task.ctid}-2024_01_01-02_30_00.tar.zst"
        backup = Backup.objects.create(ctid=task.ctid, container=task.container, tenant=task.container.tenant,
                                       owner=task.container.owner, host=task.host,
                                       storage_path=task.params["dump_dir"], filename=filename, size=size,
                                       sha256="0" * 64, mode=task.params["mode"], task=task,
                                       job_id=task.params["job"])
        result = {"backup": backup.pk, "filename": filename, "size": size, "sha256": "0" * 64}
    finish_task(task, TaskStatus.OK if ok else TaskStatus.FAILED, error=error, result=result)
    Task.objects.filter(pk=task.pk).update(finished_at=start + timedelta(seconds=seconds))
    task.refresh_from_db()
    return task


# -- SMTP -------------------------------------------------------------------------------------
@pytest.fixture
def smtp_server(smtp_server, settings):
    """The shared SMTP server, with the panel's address these tests check links against."""
    settings.PANEL_URL = "http://panel.example.test"
    return smtp_server


def wait_messages(handler, n, timeout=10):
    deadline = time.monotonic() + timeout
    while len(handler.messages) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    return handler.messages


def parts(envelope):
    msg = message_from_bytes(envelope.original_content, policy=policy.default)
    text = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")
    html = msg.get_body(("html",)).get_content().replace("\r\n", "\n")
    return msg, text, html


# -- validation ---------------------------------------------------------------------------------
def test_a_bad_cron_schedule_is_refused_with_a_reason(people, acme_cts, admin_user):
    with pytest.raises(jobs.JobInvalid, match=r"'61 \* \* \* \*' is not a valid cron schedule.*minute is 0-59"):
        acme_job(people, acme_cts[:1], schedule="61 * * * *")
    for bad, why in [("", "Give a schedule"), ("* * * *", "five fields"), ("0 0 * * * *", "five fields"),
                     ("0 0 31 2 *", "never fires"), ("every day", "five fields"), ("a b c d e", "not a valid cron")]:
        with pytest.raises(jobs.JobInvalid, match=why):
            jobs.validate_schedule(bad)
    assert not BackupJob.objects.exists()

    page = logged_in(people["tadmin"]).post("/backups/jobs/new/", {
        "name": "nightly", "tenant": "acme", "schedule": "61 * * * *", "selection": "list", "containers": ["501"],
        "mode": "suspend", "compress": "zst", "notify": "always", "enabled": "on"})
    assert page.status_code == 400 and "is not a valid cron schedule" in page.content.decode()
    resp = api(admin_user).post("/api/backup-jobs/", {"name": "x", "schedule": "61 * * * *", "selection": "all"},
                                format="json")
    assert resp.status_code == 400 and "is not a valid cron schedule" in resp.json()["schedule"][0]
    assert not BackupJob.objects.exists()
    refused = AuditEvent.objects.filter(action="backupjob.create", result="refused")
    assert refused.count() == 2 and "61 * * * *" in refused.first().detail


def test_schedule_in_words_and_next_run(people, acme_cts):
    before = timezone.now()
    job = acme_job(people, acme_cts[:1])
    assert jobs.describe_schedule(job.schedule) == "At 02:30 AM"
    assert jobs.describe_schedule("*/15 * * * 1-5") == "Every 15 minutes, Monday through Friday"
    local = timezone.localtime(job.next_run_at)
    assert (local.hour, local.minute) == (2, 30) and before < job.next_run_at <= before + timedelta(days=1)
    assert job.tenant.slug == "acme" and job.owner == people["tadmin"]  # a tenant admin's only tenant

    page = logged_in(people["tadmin"]).get("/backups/jobs/").content.decode()
    assert "nightly" in page and "At 02:30 AM" in page and "CT 501" in page
    data = api(people["tadmin"]).get(f"/api/backup-jobs/{job.pk}/").json()
    assert data["schedule_text"] == "At 02:30 AM" and data["containers"] == [501] and data["tenant"] == "acme"

    # Disabled: no next run; enabled again: a new one.
    jobs.update_job(job, people["tadmin"], enabled=False)
    assert job.next_run_at is None
    jobs.update_job(job, people["tadmin"], enabled=True, schedule="@hourly")
    assert job.next_run_at and timezone.localtime(job.next_run_at).minute == 0
    assert jobs.describe_schedule("@hourly") == "Every hour"


def test_mail_addresses_are_checked(people, acme_cts):
    with pytest.raises(jobs.JobInvalid, match="Not an email address: not-an-address"):
        acme_job(people, acme_cts[:1], mailto="ops@example.test, not-an-address")
    job = acme_job(people, acme_cts[:1], mailto="ops@example.test; Boss@Example.org  ops@example.test")
    assert job.mailto == "ops@example.test, Boss@Example.org"  # anyone's addresses, each once


def test_tenant_admin_cannot_pick_another_tenants_containers(people, acme_cts, other_ct, other_tenant):
    tadmin = people["tadmin"]
    with pytest.raises(NotAllowed, match="You may not back up container 601"):
        acme_job(people, [acme_cts[0], other_ct])
    with pytest.raises(NotAllowed, match="You may not back up container 601"):
        acme_job(people, acme_cts[:1], excluded=[other_ct], selection="all")
    with pytest.raises(NotAllowed, match="backup jobs for tenant other"):
        jobs.create_job(tadmin, name="x", schedule="0 1 * * *", selection="tenant", tenant=other_tenant)
    assert not BackupJob.objects.exists()

    # The form does not even offer them; posting one anyway is refused.
    page = logged_in(tadmin).get("/backups/jobs/new/").content.decode()
    assert 'value="501"' in page and 'value="601"' not in page and 'value="other"' not in page
    page = logged_in(tadmin).post("/backups/jobs/new/", {
        "name": "sneaky", "tenant": "acme", "schedule": "0 1 * * *", "selection": "list", "containers": ["601"],
        "mode": "suspend", "compress": "zst", "notify": "always"})
    assert page.status_code == 400 and "601 is not one of the available choices" in page.content.decode()
    resp = api(tadmin).post("/api/backup-jobs/", {"name": "sneaky", "schedule": "0 1 * * *", "containers": [601]},
                            format="json")
    # The same answer as for a CTID that does not exist: nothing about whose it is.
    assert resp.status_code == 400 and "no container 601 you may back up" in str(resp.json())
    assert not BackupJob.objects.exists()


def test_admin_jobs_and_tenant_bounds(admin_user, acme, acme_cts, other_ct):
    glob = jobs.create_job(admin_user, name="everything", schedule="0 3 * * 0", selection="all",
                           excluded=[acme_cts[2]])
    assert glob.tenant is None
    assert [c.ctid for c in jobs.selected_containers(glob)] == [501, 502, 601]
    with pytest.raises(jobs.JobInvalid, match="does not belong to tenant acme"):
        jobs.create_job(admin_user, name="mixed", schedule="0 3 * * *", tenant=acme, containers=[other_ct])
    with pytest.raises(jobs.JobInvalid, match="needs the tenant"):
        jobs.create_job(admin_user, name="t", schedule="0 3 * * *", selection="tenant")
    tenant_job = jobs.create_job(admin_user, name="acme all", schedule="0 3 * * *", selection="tenant", tenant=acme)
    assert [c.ctid for c in jobs.selected_containers(tenant_job)] == [501, 502, 503]


def test_members_and_auditors_cannot_make_jobs_auditor_sees_them(people, acme_cts):
    job = acme_job(people, acme_cts[:1])
    for who in ("student", "peer", "auditor"):
        user = people[who]
        with pytest.raises(NotAllowed):
            jobs.create_job(user, name="mine", schedule="0 1 * * *", containers=acme_cts[:1])
        assert logged_in(user).get("/backups/jobs/new/").status_code == 403
        assert api(user).post("/api/backup-jobs/", {"name": "m", "schedule": "0 1 * * *"},
                              format="json").status_code == 403
    auditor = logged_in(people["auditor"])
    page = auditor.get(f"/backups/jobs/{job.pk}/")
    assert page.status_code == 200 and "nightly" in page.content.decode() and "Run now" not in page.content.decode()
    assert auditor.post(f"/backups/jobs/{job.pk}/run/").status_code == 403
    assert auditor.post(f"/backups/jobs/{job.pk}/", {"name": "renamed"}).status_code == 403
    assert api(people["auditor"]).patch(f"/api/backup-jobs/{job.pk}/", {"name": "r"}, format="json").status_code == 403
    assert api(people["auditor"]).get("/api/backup-jobs/").json()["count"] == 1
    # A member of acme who is not its admin does not see acme's jobs at all.
    assert logged_in(people["student"]).get(f"/backups/jobs/{job.pk}/").status_code == 404
    assert not BackupRun.objects.exists() and BackupJob.objects.get().name == "nightly"


def test_outsider_gets_404_on_someone_elses_job(people, acme_cts):
    job = acme_job(people, acme_cts[:1])
    web, rest = logged_in(people["outsider"]), api(people["outsider"])
    for url in (f"/backups/jobs/{job.pk}/", f"/backups/jobs/{job.pk}/delete/"):
        assert web.get(url).status_code == 404
    assert web.post(f"/backups/jobs/{job.pk}/run/").status_code == 404
    assert web.post(f"/backups/jobs/{job.pk}/delete/", {"confirm": "nightly"}).status_code == 404
    assert rest.get(f"/api/backup-jobs/{job.pk}/").status_code == 404
    assert rest.patch(f"/api/backup-jobs/{job.pk}/", {"name": "x"}, format="json").status_code == 404
    assert rest.delete(f"/api/backup-jobs/{job.pk}/").status_code == 404
    assert rest.post(f"/api/backup-jobs/{job.pk}/run-now/").status_code == 404
    assert rest.get("/api/backup-jobs/").json()["count"] == 0
    assert "nightly" not in web.get("/backups/jobs/").content.decode()
    assert BackupJob.objects.filter(pk=job.pk, name="nightly").exists() and not BackupRun.objects.exists()


# -- pages and API ----------------------------------------------------------------------------
def test_pages_create_edit_run_now_delete(people, acme_cts):
    web = logged_in(people["tadmin"])
    resp = web.post("/backups/jobs/new/", {
        "name": "weekly", "tenant": "acme", "schedule": "0 4 * * 6", "selection": "tenant", "excluded": ["503"],
        "mode": "snapshot", "compress": "gz", "mailto": "a@example.test", "notify": "failure", "enabled": "on",
        "keep_last": "3"})
    job = BackupJob.objects.get(name="weekly")
    assert resp.status_code == 302 and resp["Location"] == f"/backups/jobs/{job.pk}/"
    assert (job.selection, job.mode, job.compress, job.notify, job.keep_last) == ("tenant", "snapshot", "gz",
                                                                                "failure", 3)
    assert [c.ctid for c in job.excluded.all()] == [503]
    page = web.get(f"/backups/jobs/{job.pk}/").content.decode()
    assert "At 04:00 AM, only on Saturday" in page and "containers of acme except 503" in page
    assert '<option value="503" selected>' in page  # the edit form shows what is excluded

    resp = web.post(f"/backups/jobs/{job.pk}/", {
        "name": "weekly", "tenant": "acme", "schedule": "0 5 * * 6", "selection": "list", "containers": ["501"],
        "mode": "snapshot", "compress": "gz", "notify": "always", "enabled": "on"})
    assert resp.status_code == 302
    job.refresh_from_db()
    assert job.schedule == "0 5 * * 6" and [c.ctid for c in job.containers.all()] == [501] and job.keep_last is None

    resp = web.post(f"/backups/jobs/{job.pk}/run/")
    assert resp.status_code == 302
    run = job.runs.get()
    (task,) = run.tasks.all()
    assert (task.type, task.ctid, task.status, task.user) == (TaskType.CT_BACKUP, 501, "queued", None)
    assert task.params["job"] == job.pk and task.params["run"] == run.pk and task.params["mode"] == "snapshot"
    page = web.get(f"/backups/jobs/{job.pk}/").content.decode()
    assert f"Run #{run.pk}" in page and 'data-ctid="501"' in page
    assert AuditEvent.objects.filter(action="backupjob.run", user=people["tadmin"]).exists()

    page = web.get(f"/backups/jobs/{job.pk}/delete/").content.decode()
    assert "Delete backup job weekly?" in page
    resp = web.post(f"/backups/jobs/{job.pk}/delete/", {"confirm": "wrong"})
    assert resp.status_code == 400 and BackupJob.objects.filter(pk=job.pk).exists()
    resp = web.post(f"/backups/jobs/{job.pk}/delete/", {"confirm": "weekly"})
    assert resp.status_code == 302 and not BackupJob.objects.filter(pk=job.pk).exists()
    assert 'href="/backups/"' in web.get("/backups/jobs/").content.decode()  # the nav link


def test_api_create_update_run_now_delete(people, acme_cts, acme):
    rest = api(people["tadmin"])
    resp = rest.post("/api/backup-jobs/", {"name": "api job", "schedule": "15 1 * * *", "selection": "list",
                                           "containers": [501, 502], "mailto": "x@example.test", "keep_daily": 7},
                     format="json")
    assert resp.status_code == 201, resp.content
    data = resp.json()
    assert data["tenant"] == "acme" and data["containers"] == [501, 502] and data["keep_daily"] == 7
    assert data["schedule_text"] == "At 01:15 AM" and data["next_run_at"]
    pk = data["id"]
    resp = rest.patch(f"/api/backup-jobs/{pk}/", {"excluded": [502], "schedule": "61 1 * * *"}, format="json")
    assert resp.status_code == 400 and "schedule" in resp.json()
    resp = rest.patch(f"/api/backup-jobs/{pk}/", {"containers": [503]}, format="json")
    assert resp.status_code == 200 and resp.json()["containers"] == [503]
    resp = rest.post(f"/api/backup-jobs/{pk}/run-now/")
    assert resp.status_code == 202 and len(resp.json()["tasks"]) == 1
    assert rest.get(f"/api/backup-jobs/{pk}/runs/").json()[0]["status"] == "running"
    assert rest.get("/api/backup-jobs/").json()["count"] == 1
    assert rest.delete(f"/api/backup-jobs/{pk}/").status_code == 204
    assert not BackupJob.objects.exists()


# -- due runs ---------------------------------------------------------------------------------
def test_a_due_job_queues_one_task_per_selected_container(people, acme_cts):
    job = due(acme_job(people, [], selection="all", excluded=[acme_cts[1]]))
    now = timezone.now()
    lines = jobs.due_runs(now)
    run = BackupRun.objects.get()
    tasks = list(run.tasks.order_by("ctid"))
    assert [t.ctid for t in tasks] == [501, 503] and all(t.status == "queued" for t in tasks)
    assert all(t.params["job"] == job.pk and t.params["run"] == run.pk and t.user is None for t in tasks)
    job.refresh_from_db()
    assert job.last_run_at == now and job.next_run_at > now
    assert (timezone.localtime(job.next_run_at).hour, timezone.localtime(job.next_run_at).minute) == (2, 30)
    assert len(lines) == 1 and "2 containers" in lines[0]
    # The next pass: nothing new (the job is not due; the containers are busy anyway).
    assert jobs.due_runs(now + timedelta(seconds=60)) == [] and BackupRun.objects.count() == 1
    # Disabled jobs never run.
    other = due(acme_job(people, acme_cts[:1], name="off"))
    BackupJob.objects.filter(pk=other.pk).update(enabled=False)
    assert jobs.due_runs() == [] and BackupRun.objects.count() == 1


def test_a_missed_run_without_run_missed_only_moves_forward(people, acme_cts):
    job = due(acme_job(people, acme_cts[:2], schedule="0 * * * *", run_missed=False), ago=timedelta(days=3))
    now = timezone.now()
    lines = jobs.due_runs(now)
    assert not BackupRun.objects.exists() and not Task.objects.exists()
    job.refresh_from_db()
    assert now < job.next_run_at <= now + timedelta(hours=1) and job.last_run_at is None
    event = AuditEvent.objects.get(action="backupjob.missed")
    assert "missed" in event.detail and "not run" in event.detail and "missed run" in lines[0]


def test_a_missed_run_with_run_missed_runs_exactly_once(people, acme_cts):
    job = due(acme_job(people, acme_cts[:2], schedule="0 * * * *", run_missed=True), ago=timedelta(days=3))
    now = timezone.now()
    jobs.due_runs(now)
    jobs.due_runs(now + timedelta(seconds=1))  # a second pass at once: not again
    run = BackupRun.objects.get()
    assert run.tasks.count() == 2  # 72 missed hours, one run
    job.refresh_from_db()
    assert job.next_run_at > now and job.last_run_at == now
    assert "missed" in AuditEvent.objects.get(action="backupjob.run").detail


def test_a_locked_container_is_reported_and_the_run_goes_on(people, acme_cts, host):
    holder = submit_task(type=TaskType.CT_START, host=host, container=acme_cts[0])
    Container.objects.filter(pk=acme_cts[0].pk).update(lock_task=holder)
    job = due(acme_job(people, acme_cts[:2]))
    jobs.due_runs()
    run = BackupRun.objects.get(job=job)
    refused = run.tasks.get(ctid=501)
    assert refused.status == "failed" and f"locked by task #{holder.pk}" in refused.error
    assert run.tasks.get(ctid=502).status == "queued"
    rows = {r["ctid"]: r for r in jobs.run_rows(run)}
    assert "locked by task" in rows[501]["error"] and rows[502]["status"] == "queued"
    page = logged_in(people["tadmin"]).get(f"/backups/jobs/{job.pk}/").content.decode()
    assert f"locked by task #{holder.pk}" in page


def test_scheduler_pass_runs_due_jobs_and_finishes_runs(people, acme_cts, smtp_server):
    from panel.management.commands.scheduler import run_pass
    job = due(acme_job(people, acme_cts[:1]))
    lines = run_pass()
    run = BackupRun.objects.get(job=job)
    assert any("run #" in line for line in lines)
    agent_runs(run.tasks.get())
    lines = run_pass()
    run.refresh_from_db()
    assert run.status == "ok" and run.report_sent_at is not None
    assert len(wait_messages(smtp_server, 1)) == 1 and any("report" in line for line in lines)


# -- the report ---------------------------------------------------------------------------------
def test_report_of_a_successful_run(people, acme_cts, smtp_server):
    job = acme_job(people, acme_cts[:2], mailto="ops@example.test, boss@example.org")
    run = jobs.run_now(job, people["tadmin"])
    t501, t502 = run.tasks.order_by("ctid")
    agent_runs(t501, seconds=83, size=1258291, lines=("INFO: starting backup of CT 501", "INFO: <tar> & done"))
    assert jobs.finish_runs() == []  # 502 still queued: the run goes on, nothing is sent
    agent_runs(t502, seconds=5, size=2048)
    jobs.finish_runs()
    run.refresh_from_db()
    assert run.status == "ok" and run.finished_at and run.report_sent_at

    (envelope,) = wait_messages(smtp_server, 1)
    assert sorted(envelope.rcpt_tos) == ["boss@example.org", "ops@example.test"]
    msg, text, html = parts(envelope)
    assert msg["Subject"] == f"vzdump backup status ({socket.getfqdn()}) : backup successful"  # this machine
    assert msg["From"] == "vzpanel@example.test"
    assert re.search(r"^VMID\s+NAME\s+STATUS\s+TIME\s+SIZE\s+FILENAME$", text, re.M)
    dump = t501.params["dump_dir"].rstrip("/")
    assert re.search(rf"^501\s+acme-student\s+ok\s+00:01:23\s+1\.2 MiB\s+{dump}/vzdump-lxc-501-\S+\.tar\.zst$", text, re.M)
    assert re.search(r"^502\s+ct502\s+ok\s+00:00:05\s+2\.0 KiB\s+\S+vzdump-lxc-502-", text, re.M)
    assert re.search(r"^TOTAL\s+2\s+00:01:28\s+1\.2 MiB$", text, re.M)
    log = text.split("Detailed backup logs:", 1)[1]
    # vzdump's: the command line, then CTID: date time LEVEL: message.
    assert f"\n\nvzdump 501 502 --mode {job.mode} --compress {job.compress} --mailto 'ops@example.test, boss@example.org'\n\n" in log
    assert re.search(r"^501: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d INFO: starting backup of CT 501$", log, re.M)
    assert re.search(r"^502: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d INFO: Task ok$", log, re.M)
    assert re.search(r"^501: .*INFO: <tar> & done$", log, re.M)
    assert re.search(r"^502: .*Task ok$", log, re.M)
    assert all(line.startswith(("501: ", "502: ")) for line in log.strip().splitlines()
               if line and not line.startswith(("The job:", "vzdump ")))
    assert f"http://panel.example.test/backups/jobs/{job.pk}/" in text

    # The HTML part: the same table, escaped.
    assert "<th>VMID</th><th>NAME</th><th>STATUS</th><th>TIME</th><th>SIZE</th><th>FILENAME</th>" in html
    assert "<td>TOTAL</td><td>2</td>" in html
    assert "INFO: &lt;tar&gt; &amp; done" in html and "<tar>" not in html
    assert "501: " in html and "1.2 MiB" in html

    # Sent once: more passes send nothing more.
    jobs.finish_runs()
    jobs.finish_runs(timezone.now() + timedelta(minutes=1))
    time.sleep(0.3)
    assert len(smtp_server.messages) == 1


def test_report_of_a_failed_run(people, acme_cts, smtp_server, host, template_name, acme):
    second = Host.objects.create(name="vzt-host2", dump_dir="/srv/dump")
    make_ct(504, acme, people["tadmin"], second, template_name)
    job = acme_job(people, [*acme_cts[:2], Container.objects.get(ctid=504)], notify="failure")
    run = jobs.run_now(job, people["tadmin"])
    t501, t502, t504 = run.tasks.order_by("ctid")
    agent_runs(t501)
    agent_runs(t502, ok=False, seconds=2, lines=("INFO: starting backup",), error="tar: disk <full>")
    agent_runs(t504, seconds=1, size=10)
    jobs.finish_runs()
    run.refresh_from_db()
    assert run.status == "failed"
    (envelope,) = wait_messages(smtp_server, 1)
    msg, text, html = parts(envelope)
    assert msg["Subject"] == f"vzdump backup status ({socket.getfqdn()}, vzt-host2) : backup failed"
    assert re.search(r"^502\s+ct502\s+err\s+00:00:02\s+-\s+error: tar: disk <full>$", text, re.M)
    assert re.search(r"^501\s+acme-student\s+ok\s", text, re.M) and re.search(r"^504\s+ct504\s+ok\s", text, re.M)
    assert re.search(r"^502: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d ERROR: tar: disk <full>$", text, re.M)
    assert re.search(r"^TOTAL\s+3\s+00:01:26\s+1\.2 MiB$", text, re.M)
    assert "<td>err</td>" in html and "tar: disk &lt;full&gt;" in html and "disk <full>" not in html
    jobs.finish_runs()
    time.sleep(0.3)
    assert len(smtp_server.messages) == 1


def test_refused_container_in_the_report(people, acme_cts, smtp_server, host):
    holder = submit_task(type=TaskType.CT_START, host=host, container=acme_cts[1])
    Container.objects.filter(pk=acme_cts[1].pk).update(lock_task=holder)
    job = acme_job(people, acme_cts[:2])
    run = jobs.run_now(job, people["tadmin"])
    agent_runs(run.tasks.get(ctid=501))
    jobs.finish_runs()
    (envelope,) = wait_messages(smtp_server, 1)
    msg, text, _html = parts(envelope)
    assert msg["Subject"].endswith("backup failed")
    assert re.search(rf"^502\s+ct502\s+err\s+-\s+-\s+error: Container 502 is locked by task #{holder.pk}", text, re.M)
    assert re.search(rf"^502: .*ERROR: Container 502 is locked by task #{holder.pk}", text, re.M)


def test_notify_failure_sends_nothing_on_success(people, acme_cts, smtp_server):
    job = acme_job(people, acme_cts[:1], notify="failure")
    run = jobs.run_now(job, people["tadmin"])
    agent_runs(run.tasks.get())
    jobs.finish_runs()
    jobs.finish_runs()
    run.refresh_from_db()
    assert run.status == "ok" and run.report_sent_at is None
    time.sleep(0.3)
    assert smtp_server.messages == []
    # Without addresses there is no report either, whatever happens.
    quiet = acme_job(people, acme_cts[1:2], name="quiet", mailto="")
    run = jobs.run_now(quiet, people["tadmin"])
    agent_runs(run.tasks.get(), ok=False, error="boom")
    jobs.finish_runs()
    run.refresh_from_db()
    assert run.status == "failed" and run.report_sent_at is None
    time.sleep(0.2)
    assert smtp_server.messages == []


def test_the_report_is_claimed_once(people, acme_cts, smtp_server):
    job = acme_job(people, acme_cts[:1])
    run = jobs.run_now(job, people["tadmin"])
    agent_runs(run.tasks.get())
    # Another pass got there first (closed the run and claimed the report): this one sends nothing.
    now = timezone.now()
    BackupRun.objects.filter(pk=run.pk).update(status="ok", finished_at=now, report_sent_at=now)
    assert jobs.finish_runs() == []
    time.sleep(0.3)
    assert smtp_server.messages == []


def test_helpers():
    assert [human_size(n) for n in (None, 0, 512, 1536, 1258291, 5 * 1024 ** 3)] == \
        ["-", "0 B", "512 B", "1.5 KiB", "1.2 MiB", "5.0 GiB"]
    assert [duration(s) for s in (None, 0, 83, 3725, 90061)] == ["-", "00:00:00", "00:01:23", "01:02:05", "25:01:01"]


# -- retention after a run --------------------------------------------------------------------
def test_the_jobs_retention_prunes_after_a_good_run(people, acme_cts, host):
    ct = acme_cts[0]
    old = []
    for days, protected in ((3, False), (2, True), (1, False)):
        old.append(Backup.objects.create(ctid=501, container=ct, tenant=ct.tenant, host=host,
                                         storage_path=host.dump_dir, filename=f"vzdump-lxc-501-old{days}.tar.zst",
                                         size=10, sha256="0" * 64, protected=protected,
                                         created_at=timezone.now() - timedelta(days=days)))
    job = acme_job(people, [ct], keep_last=2, mailto="")
    run = jobs.run_now(job, people["tadmin"])
    agent_runs(run.tasks.get())
    jobs.finish_runs()
    deletes = Task.objects.filter(type=TaskType.BACKUP_DELETE)
    # Kept: the new one and the newest old one (keep-last 2) and the protected one; removed: the oldest.
    assert [t.params["backup"] for t in deletes] == [old[0].pk]
    assert "prune with keep-last=2: removing vzdump-lxc-501-old3.tar.zst" in run.tasks.get().log
    jobs.finish_runs()
    assert Task.objects.filter(type=TaskType.BACKUP_DELETE).count() == 1  # once


def test_storage_on_another_host_is_refused_per_container(people, acme_cts, admin_user, template_name, acme):
    second = Host.objects.create(name="vzt-host2", dump_dir="/srv/dump")
    storage = BackupStorage.objects.create(host=second, name="nas", path="/mnt/nas")
    job = jobs.create_job(admin_user, name="to nas", schedule="0 1 * * *", tenant=acme, containers=acme_cts[:1],
                          storage=storage)
    run = jobs.run_now(job, admin_user)
    task = run.tasks.get()
    assert task.status == "failed" and "Storage nas is on host vzt-host2" in task.error
