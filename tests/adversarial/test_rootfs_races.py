"""Issue 12, finding 1: the root agent never follows a link or races a rename in a tree a
container controls.

Real containers with a process inside that keeps swapping a directory for a link to a host
directory, planted FIFOs and device nodes, sparse files of 256 MiB; every attack goes through
the panel's own service functions and the real agent, plus the engine directly where many more
tries than the panel allows make the race near certain. And a static check that nothing but
containers/engine/safefs.py touches files under a container's root.
"""
from __future__ import annotations

import ast
import contextlib
import os
import shutil
import stat
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from backups import services as backup_services
from backups.models import Backup
from containers import ostemplates, services
from containers.engine.lxc import ContainerSpec, LxcError, write_identity
from containers.engine.safefs import SafeFsError, readonly_view
from containers.engine.templates import read_meta, remove_template
from containers.engine.vzdump import ArchiveOptions, create_archive, rsync_copy
from containers.models import Container
from network import services as net

from ..conftest import LXCPATH, RUN_DIR, TEMPLATE_DIR, wait_task, wait_until

REPO = Path(__file__).resolve().parents[2]
MIB = 1 << 20
STOP_FILE = "stop-loop"


# -- the boundary, read from the code ------------------------------------------------------------------
# Modules of the agent that handle containers' files (besides containers/engine, all of it).
AGENT_MODULES = ["containers/jobs.py", "containers/template_jobs.py", "containers/migration.py", "backups/jobs.py",
                 "network/jobs.py", "hosts/agent.py", "metrics/sampler.py"]
# Path methods that read, write, list, stat or change what is at a path.
PATH_METHODS = {"open", "read_text", "read_bytes", "write_text", "write_bytes", "unlink", "chmod", "lchmod", "chown",
                "mkdir", "rmdir", "rename", "replace", "symlink_to", "hardlink_to", "link_to", "touch", "exists",
                "is_file", "is_dir", "is_symlink", "is_fifo", "is_block_device", "is_char_device", "is_socket", "stat",
                "lstat", "iterdir", "glob", "rglob", "resolve", "readlink", "owner", "group", "samefile"}
ROOT_ITSELF_OK = {"mkdir", "exists", "is_dir", "rmdir"}  # the root directory itself is the agent's
ROOT_ITSELF_BAD_FUNCS = {"open", "listdir", "scandir", "walk", "chmod", "chown", "lchown", "readlink", "unlink",
                         "remove", "rmtree", "copytree", "copy", "copy2", "copyfile"}
DERIVING = {"joinpath", "with_name", "with_suffix", "with_stem", "absolute"}
# Functions that make a tree of their own from nothing, in a fresh mkdtemp directory (mode 0700) no one
# else can write to: not a tree the agent does not own.
OWN_TREES = {("containers/engine/busybox.py", "build_busybox_template")}
# What the agent's job modules may hand a container's root (lxc.rootfs(ctid)) to: safefs, and the read-only
# view that external tools (rsync, tar) read instead. Anything else is a way round safefs.
ROOT_CONSUMERS = {"Tree", "readonly_view", "resolved_name", "str", "Path"}


class RootPaths:
    """Which expressions of one function are a tree's root, or a path below it (flow-insensitive:
    a name is tainted if any assignment in the function taints it)."""

    def __init__(self, func: ast.AST):
        self.func = func
        self.roots = {a.arg for a in ast.walk(func.args) if isinstance(a, ast.arg) and a.arg == "rootfs"}
        self.container_roots: set[str] = set()
        self.under: set[str] = set()
        changed = True
        while changed:
            before = (len(self.roots), len(self.under), len(self.container_roots))
            for node in own_nodes(func):
                if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    for name in (t.id for t in targets if isinstance(t, ast.Name)):
                        self._bind(name, node.value)
                elif isinstance(node, ast.For) and isinstance(node.target, ast.Name):
                    it = node.iter
                    if isinstance(it, ast.Call) and isinstance(it.func, ast.Attribute) and \
                            it.func.attr in ("glob", "rglob", "iterdir") and self.tainted(it.func.value):
                        self.under.add(node.target.id)
            changed = before != (len(self.roots), len(self.under), len(self.container_roots))

    def _bind(self, name: str, value: ast.AST) -> None:
        if self.container_root(value):
            self.container_roots.add(name)
        if self.root(value):
            self.roots.add(name)
        elif self.below(value):
            self.under.add(name)

    def container_root(self, e: ast.AST) -> bool:
        """lxc.rootfs(ctid): the files of a container that may be running."""
        return (isinstance(e, ast.Call) and isinstance(e.func, ast.Attribute) and e.func.attr == "rootfs") or \
            (isinstance(e, ast.Name) and e.id in self.container_roots) or \
            (isinstance(e, ast.Call) and _name(e.func) in ("str", "Path") and any(map(self.container_root, e.args)))

    def root(self, e: ast.AST) -> bool:
        if isinstance(e, ast.Name):
            return e.id in self.roots
        if isinstance(e, ast.BinOp) and isinstance(e.op, ast.Div):
            return isinstance(e.right, ast.Constant) and e.right.value == "rootfs"
        if isinstance(e, ast.Call) and _name(e.func) in ("str", "Path"):
            return any(map(self.root, e.args))
        return self.container_root(e)

    def below(self, e: ast.AST) -> bool:
        if isinstance(e, ast.Name):
            return e.id in self.under
        if isinstance(e, ast.BinOp) and isinstance(e.op, ast.Div):
            return not self.root(e) and self.tainted(e.left)
        if isinstance(e, ast.Attribute) and e.attr == "parent":
            return self.below(e.value)
        if isinstance(e, ast.Call):
            if isinstance(e.func, ast.Attribute) and e.func.attr in DERIVING:
                return self.tainted(e.func.value)
            if _name(e.func) in ("str", "Path", "join", "fspath"):
                return any(map(self.below, e.args)) or (_name(e.func) == "join" and len(e.args) > 1
                                                        and self.tainted(e.args[0]))
        if isinstance(e, ast.JoinedStr):  # f"{rootfs}/etc/hosts": a tainted value, then more path
            parts = e.values
            return any(isinstance(v, ast.FormattedValue) and (self.below(v.value) or self.root(v.value) and
                       i + 1 < len(parts) and isinstance(parts[i + 1], ast.Constant)
                       and str(parts[i + 1].value).startswith("/")) for i, v in enumerate(parts))
        return False

    def tainted(self, e: ast.AST) -> bool:
        return self.root(e) or self.below(e)

    def violations(self, agent_module: bool) -> list[tuple[int, str]]:
        found = []
        for node in own_nodes(self.func):
            if not isinstance(node, ast.Call):
                continue
            args = [*node.args, *(k.value for k in node.keywords)]
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in PATH_METHODS:
                if self.below(func.value) or (self.root(func.value) and func.attr not in ROOT_ITSELF_OK):
                    found.append((node.lineno, f".{func.attr}() on a path in a container's tree"))
            dotted = _dotted(func)
            if dotted == "open" or dotted.split(".")[0] in ("os", "shutil"):
                last = dotted.rsplit(".", 1)[-1]
                if any(map(self.below, args)) or (last in ROOT_ITSELF_BAD_FUNCS and any(map(self.root, args))):
                    found.append((node.lineno, f"{dotted}() on a path in a container's tree"))
            if not found or found[-1][0] != node.lineno:
                if _name(func) not in ("str", "Path", "fspath", "join", *DERIVING) and any(map(self.below, args)):
                    # A helper that takes a path is a way round the rules above (_safe_write(etc / "hosts")).
                    found.append((node.lineno, f"{_name(func) or 'a call'}() gets a path in a container's tree"))
            if agent_module and _name(func) not in ROOT_CONSUMERS and any(map(self.container_root, _flat(args))):
                found.append((node.lineno, f"{_name(func)}() gets a container's tree, not a safefs Tree or view"))
        return found


def own_nodes(func: ast.AST):
    """The nodes of a function, not those of functions defined inside it (they are checked alone)."""
    stack = list(ast.iter_child_nodes(func))
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            stack.extend(ast.iter_child_nodes(node))


def _name(func: ast.AST) -> str:
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _dotted(func: ast.AST) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return f"{_dotted(func.value)}.{func.attr}"
    return ""


def _flat(args):
    for arg in args:
        if isinstance(arg, (ast.List, ast.Tuple)):
            yield from _flat(arg.elts)
        elif isinstance(arg, ast.Starred):
            yield from _flat([arg.value])
        else:
            yield arg


def boundary_violations(source: str, filename: str, agent_module: bool) -> list[str]:
    tree = ast.parse(source, filename)
    out = []
    for func in ast.walk(tree):
        if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)) and (filename, func.name) not in OWN_TREES:
            for lineno, what in RootPaths(func).violations(agent_module):
                out.append(f"{filename}:{lineno} ({func.name}): {what}")
    return sorted(set(out))


def test_only_safefs_touches_files_in_a_container_tree():
    """Opening, reading, writing, listing, chowning or deleting a path below a tree's root happens
    in containers/engine/safefs.py only; external tools read a container only through its view."""
    engine = sorted(p for p in (REPO / "containers" / "engine").glob("*.py") if p.name != "safefs.py")
    files = [(p, False) for p in engine] + [(REPO / m, True) for m in AGENT_MODULES if (REPO / m).exists()]
    found = []
    for path, agent_module in files:
        found += boundary_violations(path.read_text(), str(path.relative_to(REPO)), agent_module)
    assert found == [], "\n".join(found)


def test_the_boundary_check_sees_the_old_ways():
    """The check above is not vacuous: what the agent did before issue 12 is caught."""
    old = '''
def write_identity(rootfs, spec):
    etc = rootfs / "etc"
    if etc.is_symlink() or not etc.is_dir():
        raise LxcError("no")
    hosts_path = etc / "hosts"
    text = hosts_path.read_text()
    _atomic_write(etc / "hostname", spec.hostname)

def _is_busybox_init(rootfs):
    init = rootfs / "sbin" / "init"
    return os.path.islink(init) and os.path.basename(os.readlink(init)) == "busybox"

def open_in_root(rootfs, relpath, flags):
    return os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)

def prepare(rootfs):
    for key in (rootfs / "etc" / "ssh").glob("ssh_host_*"):
        key.unlink()
    with open(f"{rootfs}/etc/fstab", "w") as fh:
        fh.write("")

def suspend(ct, lxc, copy):
    rsync_copy(lxc.rootfs(ct.ctid), copy, [])
    rootfs = lxc.rootfs(ct.ctid)
    run(["tar", "-c", "-C", str(rootfs), "."])
'''
    found = boundary_violations(old, "old.py", agent_module=True)
    for where in ("(write_identity): .is_symlink()", "(write_identity): _atomic_write() gets a path", "(write_identity): .read_text()", "(_is_busybox_init): os.path.islink",
                  "(_is_busybox_init): os.readlink", "(open_in_root): os.open", "(prepare): .unlink()",
                  "(prepare): open()", "(suspend): rsync_copy() gets a container's tree", "(suspend): run() gets"):
        assert any(where in line for line in found), (where, found)
    fine = '''
def build(self, spec, partial):
    rootfs = partial / "rootfs"
    rootfs.mkdir()
    populate(rootfs)
    write_identity(rootfs, spec)
    os.rename(partial / "rootfs", partial / ".rootfs-old")
    run(["tar", "-x", "-f", str(template), "-C", str(rootfs)])

def backup(ct, lxc, copy):
    with live_view(lxc, ct.ctid) as view:
        rsync_copy(view, copy, [])
    with Tree(lxc.rootfs(ct.ctid)) as tree:
        tree.write("etc/hostname", "x")
'''
    assert boundary_violations(fine, "fine.py", agent_module=True) == []


# -- real containers, real agent --------------------------------------------------------------------------
integration = pytest.mark.integration
HUGE = 256 * MIB


def make(admin, host, template_name, ctid: int, start: bool = True, **limits) -> Container:
    task = services.create_container(user=admin, ctid=ctid, ostemplate=template_name, hostname=f"r{ctid}.test",
                                     host=host, start=start, limits=limits or None)
    assert wait_task(task).status == "ok", task.log
    return Container.objects.get(ctid=ctid)


def rootfs_of(ctid: int) -> Path:
    return LXCPATH / str(ctid) / "rootfs"


def bait(name: str) -> Path:
    """A host directory the container points its links at: nothing may ever appear in it."""
    path = RUN_DIR / "bait" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def ssh_key(i: int) -> str:
    return f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{i:032d} k{i}@race.example"


@contextlib.contextmanager
def swapping(ctid: int, directory: str, target: Path):
    """A process inside the container that swaps /`directory` for a link to the host's `target` and
    back, as fast as busybox can, until the block ends."""
    d = directory.strip("/")
    script = (f"cd / && : > /swapping && while [ ! -e /{STOP_FILE} ]; do "
              f"mv {d} {d}.real && ln -s {target} {d} && rm {d} && mv {d}.real {d}; done")
    proc = subprocess.Popen(["lxc-attach", "-n", str(ctid), "-P", str(LXCPATH), "--", "sh", "-c", script],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: (rootfs_of(ctid) / "swapping").exists() or proc.poll() is not None, 20,
                   message="the swapping process")
        assert proc.poll() is None, "the swapping process did not start"
        yield proc
    finally:
        (rootfs_of(ctid) / STOP_FILE).touch()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def ok_or_refused(task, *words: str) -> None:
    """The task did its work, or refused in one line that names the path; never a traceback."""
    assert "Traceback" not in task.log, task.log
    if task.status != "ok":
        assert task.status == "failed" and "\n" not in task.error and any(w in task.error for w in words), task.error


def peak_rss(agent) -> int:
    """The agent process's peak resident memory so far (VmHWM), in bytes."""
    for line in Path(f"/proc/{agent.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM for the agent")


def files_holding(root: Path, needle: bytes) -> list[str]:
    """Regular files below `root` (links never followed) whose content holds `needle`."""
    found = []
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = Path(dirpath, name)
            if stat.S_ISREG(path.lstat().st_mode) and needle in path.read_bytes():
                found.append(str(path.relative_to(root)))
    return found


@integration
def test_identity_files_never_land_in_a_host_directory_swapped_in_for_etc(agent, admin_user, host, template_name):
    """The reproduction of finding 1: /etc swapped for a link to a host directory while DNS and the
    hostname are set, through the panel and straight at the engine, many times."""
    ct = make(admin_user, host, template_name, 71001)
    target = bait("etc-71001")
    tasks = []
    with swapping(71001, "etc", target):
        for i in range(20):
            tasks.append(wait_task(net.set_dns(ct, admin_user, [f"198.51.100.{i + 1}"], "race.example")))
            ct.refresh_from_db()
            tasks.append(wait_task(services.update_container(ct, admin_user, hostname=f"race{i}.example")))
            ct.refresh_from_db()
        assert os.listdir(target) == []
        spec = ContainerSpec(ctid=71001, hostname="direct.example", nameservers=("198.51.100.99",))
        unclear = []
        for _ in range(400):
            try:
                write_identity(rootfs_of(71001), spec)
            except Exception as exc:  # noqa: BLE001 (each is checked below)
                if not isinstance(exc, (SafeFsError, LxcError)) or "/etc" not in str(exc) or "\n" in str(exc):
                    unclear.append(repr(exc))
    assert os.listdir(target) == []
    assert unclear == []
    for task in tasks:
        ok_or_refused(task, "/etc")


def _set_dns(ct, user):
    return net.set_dns(ct, user, ["198.51.100.53"])


def _add_key(ct, user):
    return services.set_ssh_key(ct, user, ssh_key(1))


def _set_password(ct, user):
    return services.set_user_password(ct, user, "root", "correct-horse-battery")


def _make_template(ct, user):
    return ostemplates.template_from_container(ct, user, f"fromct-{ct.ctid}")


@contextlib.contextmanager
def template_removed(name: str):
    try:
        yield
    finally:
        remove_template(TEMPLATE_DIR, f"{name}.tar.zst")


@integration
@pytest.mark.parametrize("ctid, victim, action", [
    (71010, "etc/hosts", _set_dns), (71011, "etc/passwd", _add_key), (71012, "etc/shadow", _set_password),
    (71013, "etc/os-release", _make_template)], ids=["hosts", "passwd", "shadow", "os-release"])
def test_huge_sparse_files_in_a_container_are_never_read_in_full(agent, admin_user, host, template_name,
                                                                ctid, victim, action):
    """256 MiB of apparent size in a file of no blocks: the agent looks at the size and refuses (or,
    for the template's os-release, records no distribution); its memory does not grow."""
    ct = make(admin_user, host, template_name, ctid, start=False)
    path = rootfs_of(ctid) / victim
    path.unlink(missing_ok=True)
    with open(path, "wb") as fh:
        fh.truncate(HUGE)
    before = peak_rss(agent)
    with template_removed(f"fromct-{ctid}"):
        task = wait_task(action(ct, admin_user), 120)
        grown = peak_rss(agent) - before
        assert grown < 64 * MIB, f"the agent grew by {grown // MIB} MiB"
        assert "Traceback" not in task.log, task.log
        if victim == "etc/os-release":
            assert task.status == "ok", task.log
            assert "The distribution is not recorded" in task.log and "larger than" in task.log
        else:
            assert task.status == "failed", task.log
            assert f"/{victim}" in task.error and "larger than" in task.error and "\n" not in task.error
    assert path.stat().st_size == HUGE and path.stat().st_blocks == 0  # left as it was


@integration
@pytest.mark.parametrize("ctid, victim, action", [(71014, "etc/passwd", _add_key), (71015, "etc/shadow", _set_password)],
                         ids=["passwd", "shadow"])
def test_a_fifo_planted_in_a_container_never_blocks_the_agent(agent, admin_user, host, template_name,
                                                              ctid, victim, action):
    """Opening a FIFO for reading waits for a writer: the host's only worker would hang for good."""
    ct = make(admin_user, host, template_name, ctid, start=False)
    path = rootfs_of(ctid) / victim
    path.unlink()
    os.mkfifo(path)
    task = wait_task(action(ct, admin_user), 30)
    assert task.status == "failed" and task.error == f"cannot read /{victim} in the container: it is a FIFO", task.error
    assert wait_task(_set_dns(Container.objects.get(pk=ct.pk), admin_user)).status == "ok"  # the agent goes on
    assert stat.S_ISFIFO(path.lstat().st_mode)


@contextlib.contextmanager
def loop_device_holding(data: bytes):
    """A loop device over a file in the run directory: a stand-in for one of the host's disks."""
    backing = RUN_DIR / "bait" / "disk.img"
    backing.parent.mkdir(parents=True, exist_ok=True)
    backing.write_bytes(data.ljust(MIB, b"\0"))
    device = subprocess.run(["losetup", "--find", "--show", str(backing)], capture_output=True, text=True,
                            check=True).stdout.strip()
    try:
        yield device
    finally:
        subprocess.run(["losetup", "-d", device], capture_output=True)
        backing.unlink()


@integration
@pytest.mark.parametrize("ctid, victim, action", [(71016, "etc/passwd", _add_key), (71017, "etc/shadow", _set_password)],
                         ids=["passwd", "shadow"])
def test_a_device_node_planted_in_a_container_is_never_opened(agent, admin_user, host, template_name,
                                                              ctid, victim, action):
    """A container may mknod: /etc/shadow as the host's disk would have the agent read that disk and
    write what it found into the container's /etc/shadow."""
    secret = b"root:x:0:0:root:/root:/bin/sh\nHOST-DISK-SECRET\n"
    with loop_device_holding(secret) as device:
        ct = make(admin_user, host, template_name, ctid, start=False)
        path = rootfs_of(ctid) / victim
        path.unlink()
        os.mknod(path, stat.S_IFBLK | 0o600, os.stat(device).st_rdev)
        task = wait_task(action(ct, admin_user), 30)
        assert task.status == "failed", task.log
        assert task.error == f"cannot read /{victim} in the container: it is a block device"
        assert files_holding(rootfs_of(ctid), b"HOST-DISK-SECRET") == []
        assert stat.S_ISBLK(path.lstat().st_mode)


@integration
@pytest.mark.parametrize("ctid, link", [(71020, "root"), (71021, "root/.ssh")], ids=["home", "dot-ssh"])
def test_ssh_key_never_follows_a_home_or_ssh_link_to_the_host(agent, admin_user, host, template_name, ctid, link):
    ct = make(admin_user, host, template_name, ctid, start=False)
    target = bait(f"ssh-{ctid}")
    path = rootfs_of(ctid) / link
    if path.is_dir():
        shutil.rmtree(path)
    os.symlink(target, path)
    task = wait_task(services.set_ssh_key(ct, admin_user, ssh_key(1)))
    assert task.status == "failed" and "it is a symbolic link" in task.error and "\n" not in task.error, task.error
    assert os.listdir(target) == []


@integration
def test_ssh_key_follows_a_home_link_as_the_container_would(agent, admin_user, host, template_name):
    """A home directory that is a link inside the container is followed there, and only there."""
    ct = make(admin_user, host, template_name, 71023, start=False)
    rootfs = rootfs_of(71023)
    shutil.rmtree(rootfs / "root")
    (rootfs / "srv" / "roothome").mkdir(parents=True)
    os.symlink("/srv/roothome", rootfs / "root")
    assert wait_task(services.set_ssh_key(ct, admin_user, ssh_key(2))).status == "ok"
    keys = rootfs / "srv" / "roothome" / ".ssh" / "authorized_keys"
    assert keys.read_text() == ssh_key(2) + "\n"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600 and stat.S_IMODE(keys.parent.stat().st_mode) == 0o700


@integration
def test_ssh_keys_never_reach_a_host_directory_swapped_in_for_dot_ssh(agent, admin_user, host, template_name):
    ct = make(admin_user, host, template_name, 71022)
    target = bait("ssh-71022")
    (rootfs_of(71022) / "root" / ".ssh").mkdir(mode=0o700)
    with swapping(71022, "root/.ssh", target):
        tasks = [wait_task(services.set_ssh_key(ct, admin_user, ssh_key(i))) for i in range(15)]
    assert os.listdir(target) == []
    for task in tasks:
        ok_or_refused(task, "/root/.ssh")


@integration
def test_set_password_never_uses_a_host_directory_swapped_in_for_etc(agent, admin_user, host, template_name):
    """Without chpasswd inside, the agent writes the running container's /etc/shadow itself."""
    ct = make(admin_user, host, template_name, 71030)
    rootfs = rootfs_of(71030)
    for applet in ("usr/sbin/chpasswd", "sbin/chpasswd", "usr/bin/chpasswd", "bin/chpasswd"):
        (rootfs / applet).unlink(missing_ok=True)
    target = bait("etc-71030")
    planted = "root:HOST-SHADOW-SECRET:19000:0:99999:7:::\n"
    (target / "shadow").write_text(planted)
    with swapping(71030, "etc", target):
        tasks = [wait_task(services.set_user_password(ct, admin_user, "root", f"race-password-{i}")) for i in range(12)]
    assert os.listdir(target) == ["shadow"] and (target / "shadow").read_text() == planted
    assert files_holding(rootfs, b"HOST-SHADOW-SECRET") == []
    for task in tasks:
        ok_or_refused(task, "/etc")


DECOYS = 60


def plant_decoys(rootfs: Path, secrets: Path) -> None:
    """/data in the container and a host directory of secrets hold files of the same names, sizes
    and times: what rsync would read through a swapped link looks unchanged to its second pass."""
    (rootfs / "data").mkdir()
    for i in range(DECOYS):
        mine, theirs = rootfs / "data" / f"f{i:03d}", secrets / f"f{i:03d}"
        mine.write_bytes(f"tenant-data-{i:04d}\n".encode())
        theirs.write_bytes(f"HOST-SECRET-{i:04d}\n".encode())
        for path in (mine, theirs):
            os.utime(path, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    os.symlink(secrets, rootfs / "planted")  # a link to the host that stays: copied as a link


def archive_members(path: Path) -> dict[str, tarfile.TarInfo]:
    """Every member of an archive, with HOST-SECRET checked absent from every file's data."""
    out = {}
    with subprocess.Popen(["zstd", "-dcf", str(path)], stdout=subprocess.PIPE) as dec:
        with tarfile.open(fileobj=dec.stdout, mode="r|") as tar:
            for member in tar:
                out[member.name] = member
                if member.isfile():
                    assert b"HOST-SECRET" not in tar.extractfile(member).read(), member.name
    return out


@integration
def test_rsync_and_tar_through_the_view_copy_links_as_links_and_never_read_through_them(
        agent, admin_user, host, template_name, tmp_path):
    make(admin_user, host, template_name, 71040)
    rootfs, secrets = rootfs_of(71040), bait("data-71040")
    plant_decoys(rootfs, secrets)
    with swapping(71040, "data", secrets):
        for attempt in range(4):
            copy = tmp_path / f"copy{attempt}"
            copy.mkdir()
            with readonly_view(rootfs, tmp_path / "views", "71040/rootfs") as view:
                assert str(view).endswith("/71040/rootfs")
                rsync_copy(view, copy, [], live=True)
            assert files_holding(copy, b"HOST-SECRET") == []
            assert os.readlink(copy / "planted") == str(secrets) and os.readlink(copy / "bin" / "sh") == "/bin/busybox"
        with readonly_view(rootfs, tmp_path / "views", "71040/rootfs") as view:
            archive = create_archive(view, "arch: amd64\n", tmp_path / "dump", 71040, ArchiveOptions(compress="none"))
    members = archive_members(archive.path)
    assert members["./planted"].issym() and members["./planted"].linkname == str(secrets)
    assert members["./bin/sh"].issym() and members["./etc/passwd"].isfile()
    assert os.listdir(tmp_path / "views") == [] and str(tmp_path) not in Path("/proc/self/mountinfo").read_text()


@integration
def test_suspend_backups_never_hold_host_files_the_container_swaps_in(agent, admin_user, host, template_name):
    ct = make(admin_user, host, template_name, 71041)
    rootfs, secrets = rootfs_of(71041), bait("data-71041")
    plant_decoys(rootfs, secrets)
    with swapping(71041, "data", secrets):
        for _ in range(3):
            # Archive names go by the second: two backups within one would collide (a bug of its own).
            started = int(time.time())
            wait_until(lambda: int(time.time()) != started, 2, interval=0.02, message="the next second")
            task = wait_task(backup_services.backup_container(ct, admin_user, mode="suspend", compress="zst"), 120)
            assert task.status == "ok", task.log
            ct.refresh_from_db()
    backups = list(Backup.objects.filter(ctid=71041))
    assert len(backups) == 3
    for backup in backups:
        members = archive_members(Path(backup.path))
        assert members["./planted"].issym() and members["./bin/sh"].issym()
    views = RUN_DIR / "agent-data" / "views"
    assert str(views) not in Path("/proc/self/mountinfo").read_text() and list(views.iterdir()) == []


@integration
def test_template_from_a_container_never_reads_host_files_its_links_point_at(agent, admin_user, host, template_name):
    ct = make(admin_user, host, template_name, 71050, start=False)
    rootfs = rootfs_of(71050)
    host_release = bait("osrel-71050") / "os-release"
    host_release.write_text('ID=host-secret\nVERSION_ID="99"\n')
    os.symlink(host_release, rootfs / "etc" / "os-release")
    (rootfs / "usr" / "lib").mkdir(parents=True, exist_ok=True)
    os.symlink("../" * 12 + str(host_release).lstrip("/"), rootfs / "usr" / "lib" / "os-release")
    with template_removed("fromct-71050"):
        task = wait_task(_make_template(ct, admin_user), 120)
        assert task.status == "ok", task.log
        assert "host-secret" not in str(read_meta(TEMPLATE_DIR, "fromct-71050.tar.zst"))
        members = archive_members(TEMPLATE_DIR / "fromct-71050.tar.zst")
        assert members["./etc/os-release"].issym() and members["./etc/os-release"].linkname == str(host_release)


@integration
def test_a_full_container_disk_gives_a_one_line_refusal(agent, admin_user, host, template_name):
    """ENOSPC while the agent writes /etc/hosts: a clear line, the old file kept, no traceback."""
    ct = make(admin_user, host, template_name, 71060, start=False, disk_mb=400)
    rootfs = rootfs_of(71060)
    hosts_before = (rootfs / "etc" / "hosts").read_bytes()
    st = os.statvfs(rootfs)
    subprocess.run(["fallocate", "-l", str(st.f_bavail * st.f_frsize), str(rootfs / "filler")], check=False)
    with contextlib.suppress(OSError):
        for i in range(100000):
            (rootfs / f"filler{i}").write_bytes(b"x" * 4096)
    task = wait_task(_set_dns(ct, admin_user))
    assert task.status == "failed", task.log
    assert task.error.startswith("cannot write /etc/") and task.error.endswith("no space left on the disk"), task.error
    assert "Traceback" not in task.log
    assert (rootfs / "etc" / "hosts").read_bytes() == hosts_before
    assert not [name for name in os.listdir(rootfs / "etc") if ".vzpanel-" in name]  # no temporary file left
