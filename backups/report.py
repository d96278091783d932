"""The mail a backup job sends after a run, in the shape of Proxmox's vzdump mail, which admins
filter on:

    Subject: vzdump backup status (pve1.example.org) : backup successful

    VMID  NAME  STATUS  TIME      SIZE  FILENAME
    501   web   ok      00:01:23  ...
    TOTAL ...

    Detailed backup logs:

    vzdump 501 502 --mode suspend --compress zstd --mailto ops@example.org

    501: 2026-12-06 02:30:00 INFO: Starting Backup of VM 501 (lxc)
    ...

A plain-text part and an HTML part with the same content.
"""
from __future__ import annotations

import re
import shlex
import socket

from django.conf import settings
from django.utils import timezone
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse

from .models import BackupRun


def human_size(size) -> str:
    """1.2 MiB, 512 B, 3.0 GiB; '-' when unknown."""
    if size is None:
        return "-"
    size = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} PiB"  # not reached


def duration(seconds) -> str:
    """HH:MM:SS, as vzdump writes it (hours go on past 23); '-' when unknown."""
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}"


def host_fqdn(name: str) -> str:
    """The name the subject gives a host: this machine's FQDN for the host that is this machine (as
    vzdump names its node), else the host's name in the panel."""
    if name in (settings.PANEL_HOST_NAME, socket.gethostname().split(".")[0]):
        return socket.getfqdn()
    return name


TASK_LINE = re.compile(r"^(\d\d:\d\d:\d\d) (.*)$")
LEVELS = ("INFO:", "WARN:", "ERROR:")


def vzdump_log_lines(ctid: int, task) -> list[str]:
    """A task's log as vzdump's: `CTID: YYYY-MM-DD HH:MM:SS LEVEL: message` (INFO unless the line
    says its level). The task log keeps the time of day; the date is the task's own."""
    day = timezone.localtime(task.started_at or task.created_at).strftime("%Y-%m-%d")
    lines = []
    for line in task.log.rstrip("\n").splitlines() or ["(no log)"]:
        match = TASK_LINE.match(line)
        stamp, message = (f"{day} {match.group(1)}", match.group(2)) if match else (day, line)
        if not message.startswith(LEVELS):
            message = f"INFO: {message}"
        lines.append(f"{ctid}: {stamp} {message}")
    if task.error and task.error.strip() not in task.log:
        lines.append(f"{ctid}: {day} ERROR: {task.error.strip()}")
    return lines


def command_line(run: BackupRun | None, rows: list[dict]) -> str:
    """The vzdump command the run amounts to, as vzdump prints it before the logs."""
    ctids = [str(r["ctid"]) for r in rows]
    if run is not None:
        job = run.job
        argv = ["vzdump", *ctids, "--mode", job.mode, "--compress", job.compress]
        if job.storage_id:
            argv += ["--storage", job.storage.name]
        if job.mailto:
            argv += ["--mailto", job.mailto]
        return shlex.join(argv)
    params = (rows[0]["task"].params or {}) if rows else {}
    argv = ["vzdump", *ctids]
    for key in ("mode", "compress"):
        if params.get(key):
            argv += [f"--{key}", str(params[key])]
    return shlex.join(argv)


def report_data(run: BackupRun | None, tasks=None) -> dict:
    """What a report says: of a job's run, or (run None) of the backup tasks a vzdump command made."""
    from .jobs_service import run_rows, task_rows
    rows = run_rows(run) if run is not None else task_rows(tasks or [])
    failed = (run is not None and run.status == "failed") or any(not r["ok"] for r in rows)
    hosts = sorted({r["host"] for r in rows})
    if not hosts and run is not None and run.job.storage_id:
        hosts = [run.job.storage.host.name]
    host_text = ", ".join(host_fqdn(name) for name in hosts) or "no host"
    for r in rows:
        r["status_text"] = "ok" if r["ok"] else "err"
        r["time_text"] = duration(r["seconds"])
        r["size_text"] = human_size(r["size"]) if r["ok"] else "-"
        r["file_text"] = r["filename"] if r["ok"] else (f"error: {r['error']}" if r["error"] else "-")
    total_seconds = sum(r["seconds"] or 0 for r in rows)
    total_size = sum(r["size"] or 0 for r in rows if r["ok"])
    logs = [{"ctid": r["ctid"], "lines": vzdump_log_lines(r["ctid"], r["task"])} for r in rows]
    url = settings.PANEL_URL.rstrip("/") + (reverse("backup-job-detail", args=[run.job_id]) if run is not None
                                             else reverse("backup-list"))
    return {
        "run": run, "job": run.job if run is not None else None, "rows": rows, "failed": failed, "hosts": host_text,
        "subject": f"vzdump backup status ({host_text}) : backup {'failed' if failed else 'successful'}",
        "command": command_line(run, rows),
        "total": {"count": len(rows), "time_text": duration(total_seconds), "size_text": human_size(total_size)},
        "logs": logs, "url": url,
    }


def _text(data: dict) -> str:
    header = ("VMID", "NAME", "STATUS", "TIME", "SIZE", "FILENAME")
    table = [header] + [(str(r["ctid"]), r["name"] or "-", r["status_text"], r["time_text"], r["size_text"],
                         r["file_text"]) for r in data["rows"]]
    table.append(("TOTAL", str(data["total"]["count"]), "", data["total"]["time_text"],
                  data["total"]["size_text"], ""))
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths)) + "  " + row[-1] for row in table]
    out = ([f"Backup job: {data['job'].name} (run #{data['run'].pk})", ""] if data["job"] is not None
           else ["vzdump run from the command line", ""])
    out += [line.rstrip() for line in lines]
    if not data["rows"]:
        out += ["", "The job selected no containers."]
    out += ["", "Detailed backup logs:", "", data["command"], ""]
    for log in data["logs"]:
        out += log["lines"] + [""]
    out += [f"{'The job' if data['job'] is not None else 'Backups'}: {data['url']}"]
    return "\n".join(out) + "\n"


def recipients(job) -> list[str]:
    from .jobs_service import parse_mailto
    return parse_mailto(job.mailto)


def send_report(run: BackupRun) -> bool:
    """Mail the report of `run` to its job's addresses; False if there is nobody to tell."""
    to = recipients(run.job)
    if not to:
        return False
    data = report_data(run)
    message = EmailMultiAlternatives(subject=data["subject"], body=_text(data),
                                     from_email=settings.DEFAULT_FROM_EMAIL, to=to)
    message.attach_alternative(render_to_string("backups/job_report.html", data), "text/html")
    message.send()
    return True


def send_adhoc_report(tasks, to: list[str]) -> bool:
    """vzdump --mailto: the same report for the backups one command made."""
    if not to:
        return False
    data = report_data(None, tasks)
    message = EmailMultiAlternatives(subject=data["subject"], body=_text(data),
                                     from_email=settings.DEFAULT_FROM_EMAIL, to=list(to))
    message.attach_alternative(render_to_string("backups/job_report.html", data), "text/html")
    message.send()
    return True
