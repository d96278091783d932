"""Named points where the agent can be made to die for real, for crash tests.

`fault_point("backup.frozen")` kills this process with SIGKILL (no cleanup, no `finally`, exactly
like the OOM killer or a power cut) when the environment variable VZPANEL_DIE_AT names that point.
Only root's environment can set it: the agent reads it once, from the process that started it.
"""
from __future__ import annotations

import os
import signal
import time

_DIE_AT = os.environ.get("VZPANEL_DIE_AT", "")
# VZPANEL_STALL_AT=name:seconds makes the process sleep there instead: an agent that hangs.
_STALL_AT, _, _STALL_SECONDS = os.environ.get("VZPANEL_STALL_AT", "").partition(":")


def fault_point(name: str) -> None:
    if _DIE_AT and _DIE_AT == name:
        os.kill(os.getpid(), signal.SIGKILL)
    if _STALL_AT and _STALL_AT == name:
        time.sleep(float(_STALL_SECONDS or 5))
