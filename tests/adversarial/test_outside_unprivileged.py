"""An outside tester's attacks on unprivileged containers (after the change that gave every container
its own user namespace and an idmapped root filesystem).

The student holds a member account and root in the container the panel gave them, and acts only
through the panel's own exec path. Every container's root is the same host uid (the start of root's
subordinate range), so whatever the kernel accounts or checks by uid alone is shared between tenants.
Tests named "cannot" that fail reproduce a finding; the others guard attempts that held."""
from __future__ import annotations

import base64
import gzip
import platform
import subprocess
from pathlib import Path

import pytest

from containers import services
from containers.engine.cgroups import Cgroup
from containers.jobs import lxc_for

from ..conftest import LXCPATH, wait_task
from .test_outside_root import student_container

integration = pytest.mark.integration
ATTACKER, VICTIM = 78401, 78402
KEYTOOL_SOURCE = Path(__file__).with_name("keytool.c")


def _destroy(ct, user) -> None:
    ct.refresh_from_db()
    if ct.status == "running":
        wait_task(services.stop_container(ct, user), 60)
    wait_task(services.destroy_container(ct, user, str(ct.ctid)), 60)


@pytest.fixture
def attacker_ct(agent, people, acme, plan, host, template_name):
    ct = student_container(people, acme, plan, host, template_name, ATTACKER)
    yield ct
    _destroy(ct, people["tadmin"])


@pytest.fixture
def victim_ct(agent, admin_user, people, other_tenant, plan, host, template_name):
    """Another tenant's container, on the same host, owned by that tenant's member."""
    from containers.models import Container
    task = services.create_container(user=admin_user, owner=people["outsider"], ctid=VICTIM, ostemplate=template_name,
                                     hostname=f"v{VICTIM}.other", host=host, tenant=other_tenant, plan=plan, start=True)
    assert wait_task(task, 120).status == "ok", task.log
    ct = Container.objects.get(ctid=VICTIM)
    yield ct
    _destroy(ct, admin_user)


def run_as(ct, user, script: str) -> dict:
    """A shell script run in the container by a user the panel lets exec there."""
    task = wait_task(services.exec_in_container(ct, user, ["sh", "-c", script]), 60)
    assert task.status == "ok", task.log
    return task.result


@pytest.fixture(scope="module")
def keytool(tmp_path_factory) -> str:
    """A static keyctl (busybox has none), as base64 the student pastes into the exec box."""
    if platform.machine() != "x86_64":
        pytest.skip("keytool.c makes x86-64 system calls")
    out = tmp_path_factory.mktemp("keytool") / "kt"
    subprocess.run(["gcc", "-Os", "-fno-builtin", "-static", "-nostdlib", "-fno-stack-protector", "-no-pie",
                    "-fno-asynchronous-unwind-tables", "-Wl,-n", "-Wl,--build-id=none", "-o", str(out),
                    str(KEYTOOL_SOURCE)], check=True, capture_output=True)
    return base64.b64encode(gzip.compress(out.read_bytes())).decode()


def install_keytool(ct, user, keytool: str) -> None:
    run_as(ct, user, f"echo {keytool} | base64 -d | gunzip > /tmp/kt && chmod 755 /tmp/kt")


def own_keyring_links(ring: str = "-4") -> str:
    """Shell: link into the caller's user keyring every user keyring /proc/keys shows that is not its
    own. Linking makes the caller a possessor of those keyrings and of every key in them."""
    return (f"own=$(/tmp/kt id {ring} | sed 's/rc=//'); "
            "grep ' keyring   _uid.0:' /proc/keys | while read id rest; do "
            f"[ $((0x$id)) = $own ] || /tmp/kt link $((0x$id)) {ring}; done; ")


# -- 1. kernel keys: every container's root is the same host uid --------------------------------------
KEYRING_REFUSED = "rc=-38"  # ENOSYS: the syscall filter gives containers no keyring
@integration
def test_a_container_cannot_read_another_tenants_kernel_keys(attacker_ct, victim_ct, people, keytool):
    """Keys belong to a host uid, and every container's root is host uid 100000: /proc/keys in the
    student's container lists the other tenant's user keyring (_uid.0, mode 1f3f0000: all rights to
    its 'owner'), keyctl link puts it into the student's own keyring, and keyctl read returns the
    other tenant's secret (ssh-agent/kerberos/ecryptfs keys, anything an application keeps there).
    The student could as well revoke, replace or clear them."""
    install_keytool(victim_ct, people["outsider"], keytool)
    stored = run_as(victim_ct, people["outsider"], "/tmp/kt add exam-answers s3cret-of-other-tenant -4")
    install_keytool(attacker_ct, people["student"], keytool)
    if KEYRING_REFUSED in stored["stdout"]:  # containers get no kernel keyring at all (the panel's seccomp)
        assert KEYRING_REFUSED in run_as(attacker_ct, people["student"], "/tmp/kt add mine x -4")["stdout"]
        return
    assert "rc=-" not in stored["stdout"], stored
    seen = run_as(attacker_ct, people["student"], own_keyring_links()
                  + "grep ' user ' /proc/keys | while read id rest; do echo $rest; /tmp/kt read $((0x$id)); done")
    assert "s3cret-of-other-tenant" not in seen["stdout"], f"read another tenant's key: {seen['stdout']}"
    assert "exam-answers" not in seen["stdout"], f"/proc/keys lists another tenant's keys: {seen['stdout']}"


@integration
def test_a_container_cannot_use_up_another_tenants_key_quota(attacker_ct, victim_ct, people, keytool):
    """The kernel's key quota (kernel.keys.maxkeys/maxbytes, 200 keys and 20000 bytes for a non-root
    uid) is per host uid: the student fills it and every other container can no longer add a key or
    make a session keyring (pam_keyinit, sshd logins): its add_key fails (EDQUOT, or ENOKEY when
    even its user keyring cannot be made)."""
    install_keytool(attacker_ct, people["student"], keytool)
    install_keytool(victim_ct, people["outsider"], keytool)
    try:
        filled = run_as(attacker_ct, people["student"],
                        "i=0; while /tmp/kt add k$i x -4 >/dev/null; do i=$((i+1)); [ $i -gt 5000 ] && break; done;"
                        " echo added=$i")
        assert "added=" in filled["stdout"], filled
        if "added=0" in filled["stdout"]:  # containers get no kernel keyring at all: nothing to use up
            assert KEYRING_REFUSED in run_as(attacker_ct, people["student"], "/tmp/kt add k x -4")["stdout"]
            return
        # The student's own exec sessions held a few keyrings that are freed as they end: ask more than once.
        task = wait_task(services.exec_in_container(victim_ct, people["outsider"], [
            "sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do /tmp/kt add mine$i value -4; done"]), 60)
        assert task.status == "ok" and "rc=-" not in task.result["stdout"], \
            f"another tenant's keys used up this one's quota ({filled['stdout'].strip()}): {task.result}"
    finally:
        run_as(attacker_ct, people["student"], "/tmp/kt clear -4")


# -- 2. cgroup v1 inside the container's cgroup namespace ------------------------------------------
def thaw_all(ctid: int) -> None:
    """Thaw every freezer cgroup the container made below its own (host side), so it can stop."""
    top = Cgroup(str(ctid)).path("freezer/cgroup.procs").parent
    for state in sorted(top.rglob("freezer.state"), key=lambda p: -len(p.parts)) if top.is_dir() else []:
        try:
            if state.read_text().strip() != "THAWED":
                state.write_text("THAWED")
        except OSError:
            pass


@integration
def test_a_container_cannot_make_itself_unstoppable_with_a_frozen_child_cgroup(attacker_ct, people, host):
    """Root inside mounts the v1 freezer hierarchy (its own cgroup is the namespace's root and
    group-writable to it), makes a child cgroup, moves a process there and freezes it. A frozen task
    ignores SIGKILL, so init's exit never completes: lxc-stop, lxc-stop -k and destroy all fail, and
    the tenant admin (or an expiring class) cannot stop or remove the container; the panel only
    thaws the container's top cgroup."""
    try:
        frozen = run_as(attacker_ct, people["student"],
                        "mkdir -p /tmp/fz; mount -t cgroup -o freezer none /tmp/fz; mkdir /tmp/fz/hold; "
                        "sh -c 'echo $$ > /tmp/fz/hold/cgroup.procs; exec sleep 100000' </dev/null >/dev/null 2>&1 & "
                        "while ! grep -q . /tmp/fz/hold/cgroup.procs; do sleep 0.1; done; "
                        "echo FROZEN > /tmp/fz/hold/freezer.state; cat /tmp/fz/hold/freezer.state")
        task = wait_task(services.stop_container(attacker_ct, people["tadmin"]), 300)
        state = lxc_for(host).state(ATTACKER)
        assert task.status == "ok" and state == "STOPPED", \
            f"a frozen child cgroup ({frozen['stdout'].strip()}) kept the container {state}: {task.error}"
    finally:
        thaw_all(ATTACKER)


@integration
def test_a_container_cannot_raise_its_own_limits_or_reach_release_agent(attacker_ct, people, host):
    """Held: the v1 memory hierarchy it can mount shows its own cgroup only; the limit files stay the
    host root's (read-only to it) and the hierarchy's release_agent (CVE-2022-0492) is not there."""
    result = run_as(attacker_ct, people["student"],
                    "exec 2>&1; mkdir -p /tmp/mem && mount -t cgroup -o memory none /tmp/mem; "
                    "echo -1 > /tmp/mem/memory.limit_in_bytes; echo raise=$?; "
                    "echo 99999 > /tmp/mem/memory.soft_limit_in_bytes; echo soft=$?; "
                    "ls /tmp/mem/release_agent; echo agent=$?; umount /tmp/mem")
    assert "raise=1" in result["stdout"] and "soft=1" in result["stdout"] and "agent=1" in result["stdout"], result
    assert Cgroup(str(ATTACKER)).path("memory/memory.limit_in_bytes").read_text().strip() == str(256 << 20)


# -- 3. files made inside: on-disk uid 0 ------------------------------------------------------------
@integration
def test_a_set_uid_file_made_inside_is_out_of_reach_of_host_users(attacker_ct, people):
    """Held: through the idmapped mount a set-uid-root file made inside is set-uid to the HOST's root
    on disk; no host user can reach it, because the container directory is root's alone (0770)."""
    run_as(attacker_ct, people["student"], "cp /bin/busybox /root/rootsh && chmod 4755 /root/rootsh")
    made = LXCPATH / str(ATTACKER) / "rootfs" / "root" / "rootsh"
    st = made.lstat()
    assert (st.st_uid, st.st_mode & 0o4000) == (0, 0o4000)  # what the idmapped mount makes of it
    ct_dir = (LXCPATH / str(ATTACKER)).stat()
    assert (ct_dir.st_uid, ct_dir.st_mode & 0o007) == (0, 0)
    res = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(made), "id", "-u"],
                         capture_output=True, text=True)
    assert res.returncode != 0 and res.stdout.strip() != "0", res


# -- 4. the host agent's exec: output read whole into memory -----------------------------------------
def peak_memory_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmHWM for {pid}")


@integration
def test_exec_output_does_not_exhaust_the_agents_memory(agent, attacker_ct, people):
    """The agent runs exec in its own process (RQ SimpleWorker) and captures the whole output before
    keeping its last MiB: `yes | head -c N` makes root's agent hold about 3 N (bytes, the joined copy,
    the str); a large N (the student sets the timeout up to 3600 s) exhausts the host's memory. The
    test uses 256 MiB, and the agent's peak may grow by far less."""
    before = peak_memory_kib(agent.proc.pid)
    result = run_as(attacker_ct, people["student"], "yes | head -c 268435456")
    grown_mib = (peak_memory_kib(agent.proc.pid) - before) // 1024
    assert len(result["stdout"]) <= 1 << 20
    assert grown_mib < 64, f"the agent's peak memory grew by {grown_mib} MiB for 256 MiB of output"


@integration
def test_one_students_exec_does_not_hold_every_tenants_tasks(attacker_ct, victim_ct, people):
    """The agent runs one job at a time and a member may give exec a timeout of up to 3600 s: a
    student's command that simply waits holds the host's queue, and another tenant's task (here an
    exec; a start, a backup, a stop alike) waits behind it for an hour. The student's command waits
    for a file the test writes once it has seen whether the other task ran meanwhile."""
    from tasks.choices import ACTIVE_STATES
    release = LXCPATH / str(ATTACKER) / "rootfs" / "root" / "go"
    held = services.exec_in_container(attacker_ct, people["student"], [
        "sh", "-c", "while [ ! -e /root/go ]; do sleep 0.2; done"], timeout=3600)
    other = None
    try:
        other = services.exec_in_container(victim_ct, people["outsider"], ["true"])
        try:
            wait_task(other, 60)
        except AssertionError:
            pass
        held.refresh_from_db()
        assert other.status not in ACTIVE_STATES or held.status not in ACTIVE_STATES, \
            f"another tenant's task stayed {other.status} behind the student's waiting exec"
    finally:
        release.write_text("")
        wait_task(held, 60)
        if other is not None:
            wait_task(other, 60)
