#!/usr/bin/env python3
"""`make test`: the whole suite in four pytest processes at once, each with its own run
directory, redis-server and agents (tests/settings.py), so that the machine's idle time while
containers start, Debian builds and VMs boot is used:

- the main lane: every test except those marked `vm`, `own_lane` or `alone` and the pages and
  contracts below, on SQLite, reported as it runs;
- pages and contracts without containers (marked `browser` or `contract`, not `integration`):
  Chromium pages and the API/form contracts, CPU-bound while the main lane mostly waits on LXC;
- the own lane: tests marked `own_lane`, long and mostly waiting (a Debian template build,
  backups and crash recovery), with CTIDs no other test uses;
- the database-touching tests again on a real PostgreSQL (tests/with_postgres.py).

Tests marked `vm` (tests/test_real_host.py: a Debian 12 VM installed for production, used and
rebooted) are not run here: this machine's KVM is PVM (kvm_pvm), which boots only PVM-enabled
guest kernels, not Debian's, so QEMU emulates the CPU and the test takes 13.5 minutes with its
image and wheels cached (about 17 on a fresh machine), which does not fit beside the lanes in the
30-minute budget. Run them by hand: `.venv/bin/python -m pytest -s -m vm`.

The side lanes' reports follow the main one. Then the tests marked `alone` run by themselves:
they change host-wide state that starting a container reads (/etc/subuid). The forwarding
switches the agents turn on for venet are saved before and put back after all of them (a lane
that ended first must not switch them off under another). Usage: run_suite.py [PYTEST ARGS FOR THE MAIN LANE...]
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SYSCTLS = [Path("/proc/sys/net/ipv4/ip_forward"), Path("/proc/sys/net/ipv6/conf/all/forwarding")]
PYTEST = [sys.executable, "-m", "pytest"]
PAGES_AND_CONTRACTS = "(browser or contract) and not integration and not own_lane and not alone and not vm"
SIDE_LANES = {
    "own lane (Debian template build, backups, crash recovery)":
        [*PYTEST, "-q", "-p", "no:cacheprovider", "-m", "own_lane and not vm"],
    # Pages in Chromium and the API/form contracts that need no container: CPU in this process while
    # the main lane mostly waits on LXC (they took about 6 of its 30 minutes).
    "pages and contracts without containers":
        [*PYTEST, "-q", "-p", "no:cacheprovider", "-m", PAGES_AND_CONTRACTS],
    "database-touching tests on PostgreSQL":
        [sys.executable, str(BASE_DIR / "tests" / "with_postgres.py"), "-q", "-p", "no:cacheprovider",
         "-m", "not integration and not browser and not contract and not alone"],
}


def main() -> int:
    saved = {path: path.read_text() for path in SYSCTLS if path.exists()}
    env = dict(os.environ, VZPANEL_TEST_SYSCTLS_BY_CALLER="1")
    logs = Path(tempfile.mkdtemp(prefix="vzpanel-test-lanes-"))
    side: dict[str, tuple[subprocess.Popen, Path]] = {}
    try:
        for name, argv in SIDE_LANES.items():
            log = logs / f"{len(side)}.log"
            with open(log, "w") as out:
                side[name] = (subprocess.Popen(argv, cwd=BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT),
                              log)
        main_rc = subprocess.call([*PYTEST, "-m", f"not own_lane and not alone and not vm and not ({PAGES_AND_CONTRACTS})",
                                   *sys.argv[1:]], cwd=BASE_DIR,
                                  env=env)
        failed = [] if main_rc == 0 else ["main lane"]
        for name, (proc, log) in side.items():
            rc = proc.wait()
            print(f"\n== {name}:", flush=True)
            sys.stdout.write(log.read_text())
            if rc != 0:
                failed.append(name)
        print("\n== tests that run alone (/etc/subuid):", flush=True)
        if subprocess.call([*PYTEST, "-q", "-p", "no:cacheprovider", "-m", "alone"], cwd=BASE_DIR, env=env) != 0:
            failed.append("tests that run alone")
        if failed:
            print(f"\nFAILED: {', '.join(failed)}", flush=True)
        return 1 if failed else 0
    finally:
        for proc, _ in side.values():
            if proc.poll() is None:  # interrupted: each lane cleans up what it made on SIGINT
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(120)
                except subprocess.TimeoutExpired:
                    proc.kill()
        for path, value in saved.items():
            path.write_text(value)
        for log in logs.iterdir():
            log.unlink()
        logs.rmdir()


if __name__ == "__main__":
    sys.exit(main())
