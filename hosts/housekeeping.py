"""The agent's housekeeping process: heartbeat, reconcile, sampling and consolidation, beside the
process that runs tasks (issue 22), started again by the agent whenever it dies (issue 15).

    python -m hosts.housekeeping    (only the agent starts it: it reads its orders from stdin)

How it is started, and why so. The agent has threads by the time it serves (the console server,
the freeze watchdog, RQ's), and a fork of a process with threads copies every lock another thread
holds at that instant, held, into a child where no one will release it (logging's handler lock,
Django's and redis-py's connection state, the import lock): a housekeeping process forked then
could hang at its first log line. So the agent never forks it: it starts a new interpreter
(fork+exec done in C by subprocess, no Python code runs between the two) that imports Django
afresh. What it needs goes through its stdin pipe, never on its command line or in a file: the
host, the agent's pid and the agent's token, which lives only in the agent's memory.

It dies with the agent: PR_SET_PDEATHSIG, which the kernel sends when the *thread* that started
it ends, so the agent starts it from a thread that lives until it has stopped it (Housekeeping).
"""
from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

logger = logging.getLogger("vzpanel.agent")

NICENESS = 10  # below tasks and what they run: housekeeping can wait, a user's task should not
STOP_SECONDS = 10  # for the duty under way to finish before the process is killed
PR_SET_PDEATHSIG = 1
BASE_DIR = Path(__file__).resolve().parent.parent


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with status {returncode}"


class SignalledStop:
    """The housekeeping loop's stop flag, set by SIGTERM's handler. Not a threading.Event: its set()
    takes a lock that the wait() the signal interrupted may hold, and would hang the process."""

    def __init__(self):
        self.flag = False

    def set(self) -> None:
        self.flag = True

    def is_set(self) -> bool:
        return self.flag

    def wait(self, timeout: float) -> bool:
        if not self.flag:
            time.sleep(timeout)
        return self.flag


class Housekeeping:
    """The agent's side: starts the housekeeping process, watches it from a thread of its own, and
    starts it again after `panel.process_status.next_backoff` when it dies, saying why in the log;
    until `stop`, which lets the duty under way finish (STOP_SECONDS at most)."""

    def __init__(self, host_id: int, token: str, agent_pid: int):
        self._orders = (json.dumps({"host": host_id, "token": token, "agent_pid": agent_pid}) + "\n").encode()
        self._stop = threading.Event()
        self._lock = threading.Lock()  # spawning and stopping: a process is never started after stop
        self.process: subprocess.Popen | None = None
        self._thread = threading.Thread(target=self._supervise, name="housekeeping", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _spawn(self) -> subprocess.Popen:
        env = {key: value for key, value in os.environ.items() if key != "PANEL_HOST_TOKEN"}  # it has the pipe's
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(BASE_DIR), env.get("PYTHONPATH")]))
        process = subprocess.Popen([sys.executable, "-m", "hosts.housekeeping"], stdin=subprocess.PIPE, env=env)
        try:
            process.stdin.write(self._orders)
            process.stdin.close()
        except OSError:  # it died at once: the loop sees that like any other death
            pass
        return process

    def _supervise(self) -> None:
        from panel.process_status import next_backoff
        backoff = None
        while True:
            started = time.monotonic()
            with self._lock:
                if self._stop.is_set():
                    return
                try:
                    self.process = process = self._spawn()
                except OSError as exc:  # no memory or no process slot: try again as after a crash
                    process, how = None, f"could not be started ({exc})"
            if process is not None:
                logger.info("housekeeping process started (pid %s)", process.pid)
                how = f"(pid {process.pid}) {describe_exit(process.wait())}"
                if self._stop.is_set():
                    return
            ran = time.monotonic() - started
            backoff = next_backoff(backoff, ran)
            logger.error("the housekeeping process %s after %.0f s: no heartbeat, reconcile or sampling until it "
                         "runs again; starting it again in %g s", how, ran, backoff)
            if self._stop.wait(backoff):
                return

    def stop(self) -> None:
        with self._lock:
            self._stop.set()
            process = self.process
        if process is not None and process.poll() is None:
            process.terminate()  # it finishes the duty under way, then exits
            try:
                process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                logger.warning("the housekeeping process did not stop within %s s: killing it", STOP_SECONDS)
                process.kill()
                process.wait()
        self._thread.join(STOP_SECONDS)


def main() -> None:
    """The housekeeping process: the agent's duties until SIGTERM, or until the agent dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # an agent killed outright takes this process with it
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the agent says when to stop
    line = sys.stdin.readline()
    if not line:
        return  # the agent died before it could say anything
    orders = json.loads(line)
    if os.getppid() != orders["agent_pid"]:
        return  # the agent died before prctl above: nothing would kill this process with it
    os.nice(NICENESS)
    stop = SignalledStop()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "panel.settings")
    import django
    django.setup()
    from tasks.queue import use_identity
    from hosts.agent import Agent
    from hosts.models import Host
    agent = Agent(Host.objects.get(pk=orders["host"]), orders["token"], pid=orders["agent_pid"], stop=stop)
    use_identity(agent.host.redis_user, agent.token)
    if not stop.is_set():
        agent.duties()


if __name__ == "__main__":
    main()
