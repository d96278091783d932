"""Expiry of containers (and so of classes): stopped when the date passes, destroyed after
the grace period, with a backup first when asked. Run by the scheduler every minute."""
from __future__ import annotations

import logging
from datetime import timedelta

from django.utils import timezone

from accounts import audit
from backups.models import Backup
from containers.choices import ContainerStatus
from containers.models import Container
from tasks.services import TaskError

logger = logging.getLogger(__name__)


def expiry_policy(ct: Container) -> tuple[int, bool]:
    """(grace days, backup before destroy): the class's when the container belongs to one."""
    if ct.student_class_id:
        return ct.student_class.grace_days, ct.student_class.backup_before_destroy
    return ct.grace_days, ct.backup_before_destroy


def destroy_after(ct: Container):
    return ct.expires_at + timedelta(days=expiry_policy(ct)[0]) if ct.expires_at else None


def enforce_expiry(now=None) -> list[str]:
    """One pass: queue what expired containers need next. Idempotent: a container that a
    task holds is left for the next pass, and each step is queued only when its state calls for it."""
    from backups.services import backup_container
    from containers import services

    now = now or timezone.now()
    done = []
    expired = (Container.objects.filter(expires_at__lte=now, lock_task__isnull=True)
               .exclude(status=ContainerStatus.CREATING).select_related("student_class", "host", "tenant"))
    for ct in expired:
        grace_days, wants_backup = expiry_policy(ct)
        try:
            if ct.status in (ContainerStatus.RUNNING, ContainerStatus.FROZEN):
                task = services.stop_container(ct, None)
                done.append(f"CT {ct.ctid}: expired on {ct.expires_at:%Y-%m-%d %H:%M}, stop queued (task #{task.pk})")
            elif now >= destroy_after(ct):
                backed_up = Backup.objects.filter(container=ct, created_at__gte=ct.expires_at).exists()
                if wants_backup and not backed_up:
                    task = backup_container(ct, None, notes="before expiry destroy")
                    done.append(f"CT {ct.ctid}: grace period over, backup queued (task #{task.pk})")
                else:
                    task = services.destroy_container(ct, None, ct.ctid)
                    done.append(f"CT {ct.ctid}: grace period over, destroy queued (task #{task.pk})")
            else:
                continue
        except TaskError as exc:
            done.append(f"CT {ct.ctid}: {exc}")
    for line in done:
        logger.info("expiry: %s", line)
        audit.record(None, "expiry", None, detail=line, address="scheduler", username="scheduler")
    return done


def expiring_soon(queryset, days: int = 14):
    """Containers whose expiry is within `days` (or passed), soonest first, for the dashboard."""
    return queryset.filter(expires_at__isnull=False,
                           expires_at__lte=timezone.now() + timedelta(days=days)).order_by("expires_at")
