"""Where a new container goes when nobody names a host: the online, undrained host with the
most memory left after placing it (then disk), among those that can take it."""
from __future__ import annotations

from tasks.services import TaskError

from .capacity import _available, _committed
from .models import Host


class NoHostAvailable(TaskError):
    http_status = 409


def why_not(host: Host, *, template: str | None = None, ram_mb: int = 0, cpus: int = 0, disk_mb: int = 0,
            override_capacity: bool = False) -> str | None:
    """Why `host` cannot take a container with these limits, or None if it can (`override_capacity`:
    an administrator's create, which may promise past the host's policy)."""
    from containers.models import OSTemplate
    from .capacity import shortfall
    if host.is_drained:
        return "drained" + (f" ({host.drain_reason})" if host.drain_reason else "")
    if not host.agent_online:
        return host.agent_status_text
    if template and not OSTemplate.objects.filter(host=host, name=template).exists():
        return f"has no template {template}"
    short = None if override_capacity else shortfall(host, ram_mb=ram_mb, cpus=cpus, disk_mb=disk_mb)
    if short:
        return f"not enough {short.resource}: " + short.numbers()
    return None


def _room(host: Host, ram_mb: int, disk_mb: int) -> tuple[float, float]:
    have, used = _available(host), _committed(host)
    if not have:
        return (0.0, 0.0)
    ram = (have["ram"] - used["ram"] - ram_mb) / have["ram"] if have["ram"] else 0.0
    disk = (have["disk"] - used["disk"] - disk_mb) / have["disk"] if have["disk"] else 0.0
    return (round(ram, 3), round(disk, 3))


def pick_host(*, template: str | None = None, ram_mb: int = 0, cpus: int = 0, disk_mb: int = 0,
              exclude: tuple[int, ...] = (), override_capacity: bool = False) -> Host:
    """The best host for a container, or NoHostAvailable saying why each host was passed over."""
    reasons, fits, short = [], [], False
    for host in Host.objects.exclude(pk__in=exclude):
        reason = why_not(host, template=template, ram_mb=ram_mb, cpus=cpus, disk_mb=disk_mb,
                         override_capacity=override_capacity)
        if reason:
            reasons.append(f"{host.name}: {reason}")
            short = short or reason.startswith("not enough ")
        else:
            fits.append(host)
    if not fits:
        raise NoHostAvailable("No host can take this container" + (": " + "; ".join(reasons) if reasons else
                                                                   ": the panel has no other host") + "."
                              + (" An administrator can raise a host's promise (on its page) or override "
                                 "the capacity check." if short else ""))
    return max(fits, key=lambda h: (_room(h, ram_mb, disk_mb), -h.containers.count(), h.name))
