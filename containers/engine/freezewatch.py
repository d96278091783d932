"""The freeze watchdog: thaws a container that its agent froze and did not thaw in time.

Started by `Lxc.frozen()` before the freeze, in a session of its own, so it outlives the agent.
It reads its standard input (a pipe from the agent): "done" ends the watch. End of file (the
agent died: the kernel closed the pipe) thaws at once; so does the deadline passing (the agent
hangs). Then it exits with status 3 and says why on standard error. Standard library only: it
must run when nothing else of the panel does.

    python3 freezewatch.py LXCPATH CTID DEADLINE_SECONDS
"""
from __future__ import annotations

import os
import select
import subprocess
import sys

THAWED = 3


def thaw(lxcpath: str, ctid: str) -> None:
    subprocess.run(["lxc-unfreeze", "-n", ctid, "-P", lxcpath], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=60, check=False)


def main(argv: list[str]) -> int:
    lxcpath, ctid, deadline = argv[1], str(int(argv[2])), float(argv[3])
    os.write(1, b"watching\n")
    ready, _, _ = select.select([0], [], [], deadline)
    said = os.read(0, 16) if ready else b""
    if said.startswith(b"done"):
        return 0
    reason = "its agent died" if ready else f"it was still frozen after {deadline:g} s"
    thaw(lxcpath, ctid)
    sys.stderr.write(f"thawed container {ctid}: {reason}\n")
    return THAWED


if __name__ == "__main__":
    sys.exit(main(sys.argv))
