"""Host metrics for the dashboard, read with psutil (no privilege needed)."""
from __future__ import annotations

import os
import time

import psutil


def host_stats(disk_path: str = "/") -> dict:
    mem = psutil.virtual_memory()
    swap = psutil.swap_memory()
    try:
        disk = psutil.disk_usage(disk_path)
    except OSError:
        disk = psutil.disk_usage("/")
    load1, load5, load15 = os.getloadavg()
    return {
        "cpu_count": psutil.cpu_count() or 1,
        "cpu_percent": psutil.cpu_percent(interval=None),
        "load": [round(load1, 2), round(load5, 2), round(load15, 2)],
        "mem_total": mem.total,
        "mem_used": mem.total - mem.available,
        "swap_total": swap.total,
        "swap_used": swap.used,
        "disk_total": disk.total,
        "disk_used": disk.used,
        "boot_time": psutil.boot_time(),
        "uptime": int(time.time() - psutil.boot_time()),
    }
