"""The mail a backup job sends after a run, in the shape of vzdump's:

    Subject: vzdump backup status (HOST): backup successful

    VMID  NAME  STATUS  TIME  SIZE  FILENAME
    ...
    TOTAL ...

    Detailed backup logs:
    501: ...

A plain-text part and an HTML part with the same content.
"""
from __future__ import annotations

from django.conf import settings
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
    """mm:ss (minutes go on past 59); '-' when unknown."""
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes:02d}:{secs:02d}"


def report_data(run: BackupRun | None, tasks=None) -> dict:
    """What a report says: of a job's run, or (run None) of the backup tasks a vzdump command made."""
    from .jobs_service import run_rows, task_rows
    rows = run_rows(run) if run is not None else task_rows(tasks or [])
    failed = (run is not None and run.status == "failed") or any(not r["ok"] for r in rows)
    hosts = sorted({r["host"] for r in rows})
    if not hosts and run is not None and run.job.storage_id:
        hosts = [run.job.storage.host.name]
    host_text = ", ".join(hosts) or "no host"
    for r in rows:
        r["status_text"] = "ok" if r["ok"] else "err"
        r["time_text"] = duration(r["seconds"])
        r["size_text"] = human_size(r["size"]) if r["ok"] else "-"
        r["file_text"] = r["filename"] if r["ok"] else (f"error: {r['error']}" if r["error"] else "-")
    total_seconds = sum(r["seconds"] or 0 for r in rows)
    total_size = sum(r["size"] or 0 for r in rows if r["ok"])
    logs = []
    for r in rows:
        task = r["task"]
        text = task.log.rstrip("\n")
        if task.error and task.error.strip() not in text:
            text += ("\n" if text else "") + f"ERROR: {task.error.strip()}"
        lines = text.splitlines() or ["(no log)"]
        logs.append({"ctid": r["ctid"], "lines": [f"{r['ctid']}: {line}" for line in lines]})
    url = settings.PANEL_URL.rstrip("/") + (reverse("backup-job-detail", args=[run.job_id]) if run is not None
                                             else reverse("backup-list"))
    return {
        "run": run, "job": run.job if run is not None else None, "rows": rows, "failed": failed, "hosts": host_text,
        "subject": f"vzdump backup status ({host_text}): backup {'failed' if failed else 'successful'}",
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
    out += ["", "Detailed backup logs:", ""]
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
