"""OpenVZ limits and user beancounters on mainline cgroups (v1 and v2).

OpenVZ users think in `vzctl set --ram/--swap/--cpuunits/--cpulimit/--cpus/--numproc/
--ioprio` and read `/proc/user_beancounters`.  Mainline has no beancounters, but most
of what they counted lives on as cgroup files.  This module is the one place that
knows which file stands for which knob, in which unit, on which cgroup version, and in
which order the files may be written to a live container.  It also says plainly what
the kernel cannot measure or no longer enforces instead of showing an invented number.

Plain Python (stdlib only, no Django) so the host agent, the tests and a shell can all
use it, and so it can be tested against recorded cgroup trees in a temporary directory.

Layout (LXC 5 names a running container's cgroup `lxc.payload.<CTID>`):

- v1: `<root>/<controller>/lxc.payload.<CTID>/<file>`; paths handed around by this
  module are "<controller>/<file>", e.g. "memory/memory.limit_in_bytes".
- v2: `<root>/lxc.payload.<CTID>/<file>`; paths are just "<file>", e.g. "memory.max".
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

UNLIMITED_THRESHOLD = 2**62
"""A cgroup number at or above this means "no limit".  v1 prints LONG_MAX rounded down
to a page (9223372036854771712); anything this large is no real limit either."""

LONG_MAX = 2**63 - 1
"""How OpenVZ prints an unlimited barrier or limit in /proc/user_beancounters."""

PAGE = 4096
"""OpenVZ counts physpages, swappages and oomguarpages in 4 KiB pages, whatever the
host's page size is; converting with a fixed 4096 keeps the numbers comparable with
what users knew."""

MB = 1024 * 1024
CPU_PERIOD_US = 100_000
MIN_QUOTA_US = 1_000  # the kernel refuses cfs quotas below 1 ms
DEFAULT_ROOT = "/sys/fs/cgroup"
PAYLOAD_PREFIX = "lxc.payload."

# OpenVZ's order of the beancounter list, as /proc/user_beancounters shows it.
BEANCOUNTERS = (
    "kmemsize", "lockedpages", "privvmpages", "shmpages", "numproc", "physpages",
    "vmguarpages", "oomguarpages", "numtcpsock", "numflock", "numpty", "numsiginfo",
    "tcpsndbuf", "tcprcvbuf", "othersockbuf", "dgramrcvbuf", "numothersock",
    "dcachesize", "numfile", "numiptent", "swappages",
)
NO_COUNTERPART = "no counterpart in the mainline kernel"


class CgroupError(Exception):
    """A cgroup file could not be read or written; the message names the file and
    carries the kernel's own error text (EINVAL, EBUSY, ...) so the user sees why."""


@dataclass
class Limits:
    """The OpenVZ knobs, as the panel stores them.  None means "do not touch"."""

    ram_mb: int | None = None  # physpages limit
    ram_barrier_mb: int | None = None  # physpages barrier (v1 soft limit, v2 memory.high)
    swap_mb: int = 0  # v1: memsw = ram + swap; v2: memory.swap.max
    cpuunits: int | None = None  # OpenVZ relative weight, default 1000
    cpulimit: int | None = None  # percent of ONE cpu; 0 = explicitly no limit
    cpus: int | None = None  # number of CPUs, enforced as a quota of cpus*100 %
    numproc: int | None = None  # pids.max
    ioprio: int | None = None  # 0..7, OpenVZ default 4


@dataclass
class Counter:
    """One line of /proc/user_beancounters, in OpenVZ's units (pages for *pages,
    bytes for kmemsize and the socket buffers, processes for numproc).

    For a measured counter, barrier/limit None means "unlimited" and held/maxheld/
    failcnt None means "the kernel does not provide this value".  measured=False means
    the kernel has no counterpart at all: every number is None.
    """

    resource: str
    held: int | None
    maxheld: int | None
    barrier: int | None
    limit: int | None
    failcnt: int | None
    measured: bool
    note: str = ""


@dataclass
class Usage:
    """Cumulative usage of a running container (vzlist / accounting figures)."""

    cpu_ns: int | None  # total CPU time used
    io_read_bytes: int | None
    io_write_bytes: int | None
    oom_kills: int | None
    nproc: int | None


def detect_version(root: str = DEFAULT_ROOT) -> int:
    """1 when the v1 memory controller is mounted, 2 on a pure v2 host.

    Hybrid hosts (like this one) also mount an empty v2 hierarchy at
    `<root>/unified`; that holds no controllers, so the test looks for the v1 memory
    controller first and for `cgroup.controllers` at the root itself, never below it.
    """
    base = Path(root)
    if (base / "memory" / "memory.limit_in_bytes").exists():
        return 1
    if (base / "cgroup.controllers").exists():
        return 2
    raise CgroupError(f"no cgroup memory controller found under {root} (neither v1 nor v2)")


def _unlimited(value: int | None) -> int | None:
    return None if value is None or value >= UNLIMITED_THRESHOLD else value


def _pages(value: int | None) -> int | None:
    return None if value is None else value // PAGE


def _mb_pages(mb: int | None) -> int | None:
    return None if mb is None else mb * MB // PAGE


class Cgroup:
    """One container's cgroup, on either cgroup version.

    `name` is the container's CTID ("101"); the LXC cgroup name
    "lxc.payload.101" is also accepted.  `version` is detected from `root` unless given.
    """

    def __init__(self, name: str, root: str = DEFAULT_ROOT, version: int | None = None):
        name = str(name)
        self.ctid = name[len(PAYLOAD_PREFIX):] if name.startswith(PAYLOAD_PREFIX) else name
        if not self.ctid or "/" in self.ctid or self.ctid in (".", ".."):
            raise ValueError(f"bad container name {name!r}")
        self.dirname = PAYLOAD_PREFIX + self.ctid
        self.root = Path(root)
        self.version = version if version is not None else detect_version(root)
        if self.version not in (1, 2):
            raise ValueError(f"cgroup version must be 1 or 2, not {self.version!r}")

    def __repr__(self) -> str:
        return f"Cgroup({self.ctid!r}, root={str(self.root)!r}, version={self.version})"

    # -- paths -----------------------------------------------------------
    def path(self, rel: str) -> Path:
        """Absolute path of a file named as limit_writes names it."""
        if self.version == 1:
            controller, _, fname = rel.partition("/")
            return self.root / controller / self.dirname / fname
        return self.root / self.dirname / rel

    def _file(self, controller: str, fname: str) -> str:
        return f"{controller}/{fname}" if self.version == 1 else fname

    def exists(self) -> bool:
        """True while the container runs: LXC removes the cgroup when it stops."""
        if self.version == 1:
            return (self.root / "memory" / self.dirname).is_dir()
        return (self.root / self.dirname).is_dir()

    def run_state(self) -> str | None:
        """What the cgroup says of the container, in LXC's words, without asking LXC (a few file
        reads; lxc-info costs a process and a round trip to LXC's monitor): "RUNNING" while it has
        processes and is neither frozen nor freezing, "FROZEN" while it is either; None when it
        has no cgroup or no processes, or a file is missing (then only LXC can say)."""
        try:
            if self.version == 1:
                processes = self._int("pids/pids.current")
                freezer = self._read("freezer/freezer.state")
                frozen = None if freezer is None else freezer.strip() != "THAWED"
            else:
                processes = self._keyed_value("cgroup.events", "populated")
                events_frozen, freeze = self._keyed_value("cgroup.events", "frozen"), self._int("cgroup.freeze")
                frozen = None if events_frozen is None or freeze is None else bool(events_frozen or freeze)
        except CgroupError:
            return None
        if frozen:
            return "FROZEN"
        return "RUNNING" if frozen is False and processes else None

    # -- reading ---------------------------------------------------------
    def _read(self, rel: str) -> str | None:
        try:
            return self.path(rel).read_text()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CgroupError(f"reading {self.path(rel)}: {exc.strerror}") from None

    def _int(self, rel: str) -> int | None:
        """A single number; "max" (v2) and the v1 page-rounded LONG_MAX both read as
        None, so callers never mistake "unlimited" for a huge limit."""
        text = self._read(rel)
        if text is None:
            return None
        text = text.strip()
        if text == "max":
            return None
        try:
            return _unlimited(int(text))
        except ValueError:
            return None

    def _keyed(self, rel: str) -> dict[str, int] | None:
        """Flat keyed files (memory.events, pids.events, cpu.stat, oom_control,
        memory.stat) as a dict; None when the file does not exist."""
        text = self._read(rel)
        if text is None:
            return None
        out: dict[str, int] = {}
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 2:
                try:
                    out[parts[0]] = int(parts[1])
                except ValueError:
                    pass
        return out

    def _keyed_value(self, rel: str, key: str) -> int | None:
        values = self._keyed(rel)
        return None if values is None else values.get(key)

    # -- limits ----------------------------------------------------------
    def _has_file(self, controller: str, fname: str) -> bool:
        """Whether the kernel gives a container's cgroup `fname`: looked up in the container's
        own directory while it runs, else in an empty child cgroup made and removed for the
        question (once per process). Never in other cgroups: what an earlier container or
        another program left there says nothing on a fresh host, whose first container did not
        start when the answer came from leftovers. On v2 the controller is enabled for
        children first, as a container needs it (see enable_for_children)."""
        base = self.root / controller if self.version == 1 else self.root
        own = base / self.dirname
        if own.is_dir():
            return (own / fname).exists()
        if self.version == 2:
            enable_for_children(self.root, fname.partition(".")[0])
        files = child_cgroup_files(base)
        if files is None:  # not a cgroup filesystem: a recorded tree (tests) answers for itself
            return (base / fname).exists() or any((c / fname).exists() for c in base.iterdir() if c.is_dir())
        return fname in files

    def _live_memsw_total(self) -> int | None:
        """The running container's current RAM+swap limit in bytes (None: unlimited or
        unknown), used to order writes when the caller does not know the old limits."""
        if self.version != 1 or not self.exists():
            return None
        return self._int("memory/memory.memsw.limit_in_bytes")

    def limit_writes(self, limits: Limits, old: Limits | None = None) -> list[tuple[str, str]]:
        """(file, value) pairs for `limits`, in an order safe to apply to a live cgroup.

        v1 insists memory.limit_in_bytes <= memory.memsw.limit_in_bytes at every
        moment, so when the RAM+swap total grows memsw is raised first, and when it
        shrinks memory is lowered first.  Without `old`, the live memsw limit decides
        (an unlimited or absent one counts as "shrinking": memory first).  Knobs that
        are None are left alone; swap is only set together with ram_mb.
        """
        if old is not None:
            old_total = None if old.ram_mb is None else (old.ram_mb + old.swap_mb) * MB
        else:
            old_total = self._live_memsw_total()
        return self._writes(limits, old_total)

    def _writes(self, limits: Limits, old_total: int | None) -> list[tuple[str, str]]:
        v1 = self.version == 1
        out: list[tuple[str, str]] = []
        if limits.ram_mb is not None:
            ram = limits.ram_mb * MB
            swap = (limits.swap_mb or 0) * MB
            if v1:
                mem = [("memory/memory.limit_in_bytes", str(ram))]
                if self._has_file("memory", "memory.memsw.limit_in_bytes"):
                    memsw = [("memory/memory.memsw.limit_in_bytes", str(ram + swap))]
                    growing = old_total is not None and ram + swap > old_total
                    out += memsw + mem if growing else mem + memsw
                else:  # swap accounting off (swapaccount=0): swap cannot be limited
                    out += mem
            else:
                out.append(("memory.max", str(ram)))
                if self._has_file("memory", "memory.swap.max"):
                    out.append(("memory.swap.max", str(swap)))
                # else swap accounting is off (swapaccount=0): swap cannot be limited
        if limits.ram_barrier_mb is not None:
            barrier = limits.ram_barrier_mb * MB
            out.append(("memory/memory.soft_limit_in_bytes", str(barrier)) if v1 else ("memory.high", str(barrier)))
        if limits.cpuunits is not None:
            if v1:
                out.append(("cpu/cpu.shares", str(max(2, limits.cpuunits * 1024 // 1000))))
            else:
                out.append(("cpu.weight", str(min(10000, max(1, round(limits.cpuunits / 10))))))
        quota = cpu_quota_us(limits)
        if quota is not None or limits.cpulimit == 0:
            if v1:
                out += [("cpu/cpu.cfs_period_us", str(CPU_PERIOD_US)),
                        ("cpu/cpu.cfs_quota_us", str(quota if quota is not None else -1))]
            else:
                out.append(("cpu.max", f"{quota if quota is not None else 'max'} {CPU_PERIOD_US}"))
        if limits.numproc is not None:
            out.append((self._file("pids", "pids.max"), str(limits.numproc)))
        if limits.ioprio is not None:
            # The BFQ scheduler's weight where the kernel has it, else the generic one (CFQ's
            # blkio.weight on v1, iocost's io.weight on v2); a kernel with neither (no BFQ, no
            # iocost) has no I/O weight at all: ioprio is kept on the row and written nowhere,
            # where writing a file the kernel lacks failed every start.
            weight = io_weight(limits.ioprio)
            controller = "blkio" if v1 else "io"
            candidates = ("blkio.bfq.weight", "blkio.weight") if v1 else ("io.bfq.weight", "io.weight")
            fname = next((name for name in candidates if self._has_file(controller, name)), None)
            if fname is not None:
                value = str(weight) if v1 else f"default {weight}"
                out.append((f"blkio/{fname}" if v1 else fname, value))
        return out

    def lxc_config_lines(self, limits: Limits) -> list[str]:
        """The same settings as LXC config keys, for LXC to apply at start.

        At start every limit begins unlimited, so memory before memsw is safe (LXC v1
        writes keys in the order written)."""
        key = "lxc.cgroup" if self.version == 1 else "lxc.cgroup2"
        return [f"{key}.{rel.rpartition('/')[2]} = {value}" for rel, value in self._writes(limits, None)]

    def apply(self, limits: Limits, old: Limits | None = None) -> list[str]:
        """Write the limits into the running container's cgroup (vzctl set, no restart).

        Files are opened without O_CREAT: a missing file is an error, not a new
        file.  Returns "file=value" for what was written; on the first failure raises
        CgroupError naming the file and the kernel's error text (earlier writes stay)."""
        applied = []
        for rel, value in self.limit_writes(limits, old):
            path = self.path(rel)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW)
                try:
                    os.write(fd, value.encode())
                finally:
                    os.close(fd)
            except OSError as exc:
                raise CgroupError(f"writing {value} to {path} failed: {exc.strerror}") from None
            applied.append(f"{rel}={value}")
        return applied

    # -- beancounters ----------------------------------------------------
    def beancounters(self, limits: Limits | None = None) -> list[Counter]:
        """The OpenVZ beancounter list for the running container, in OpenVZ's order
        and units.  What the kernel cannot tell is None (measured=False when it has no
        counterpart at all).  With `limits`, a note flags kernel limits that differ
        from the panel's settings (e.g. set by hand with lxc-cgroup)."""
        if not self.exists():
            raise CgroupError(f"container {self.ctid} has no cgroup under {self.root}: is it running?")
        measured = self._measure_v1() if self.version == 1 else self._measure_v2()
        if limits is not None:
            _note_mismatches(measured, limits)
        out = []
        for name in BEANCOUNTERS:
            out.append(measured.get(name) or Counter(name, None, None, None, None, None, False, NO_COUNTERPART))
        return out

    def _measure_v1(self) -> dict[str, Counter]:
        m = self._int
        c: dict[str, Counter] = {}
        usage = m("memory/memory.usage_in_bytes")
        mem_limit = m("memory/memory.limit_in_bytes")
        if self._read("memory/memory.kmem.usage_in_bytes") is not None:
            c["kmemsize"] = Counter("kmemsize", m("memory/memory.kmem.usage_in_bytes"),
                                    m("memory/memory.kmem.max_usage_in_bytes"), None, None,
                                    m("memory/memory.kmem.failcnt"), True,
                                    "limit not enforced by this kernel")
        c["numproc"] = self._numproc()
        c["physpages"] = Counter("physpages", _pages(usage), _pages(m("memory/memory.max_usage_in_bytes")),
                                 _pages(m("memory/memory.soft_limit_in_bytes")), _pages(mem_limit),
                                 m("memory/memory.failcnt"), True)
        c["oomguarpages"] = Counter("oomguarpages", _pages(usage), None, None, None,
                                    self._keyed_value("memory/memory.oom_control", "oom_kill"), True,
                                    "failcnt: oom kills")
        if self._read("memory/memory.kmem.tcp.usage_in_bytes") is not None:
            c["tcpsndbuf"] = Counter("tcpsndbuf", m("memory/memory.kmem.tcp.usage_in_bytes"),
                                     m("memory/memory.kmem.tcp.max_usage_in_bytes"), None,
                                     m("memory/memory.kmem.tcp.limit_in_bytes"),
                                     m("memory/memory.kmem.tcp.failcnt"), True,
                                     "TCP send and receive buffers together")
        memsw_usage = m("memory/memory.memsw.usage_in_bytes")
        if memsw_usage is not None:
            memsw_limit = m("memory/memory.memsw.limit_in_bytes")
            swap_held = None if usage is None else max(0, memsw_usage - usage)
            swap_limit = None
            if memsw_limit is not None and mem_limit is not None:
                swap_limit = max(0, memsw_limit - mem_limit)
            c["swappages"] = Counter("swappages", _pages(swap_held), None, None, _pages(swap_limit),
                                     m("memory/memory.memsw.failcnt"), True,
                                     "v1 counts RAM+swap: held and limit are the differences, "
                                     "failcnt counts hits of the RAM+swap limit")
        return c

    def _measure_v2(self) -> dict[str, Counter]:
        m = self._int
        c: dict[str, Counter] = {}
        current = m("memory.current")
        kernel = self._keyed_value("memory.stat", "kernel")
        if kernel is not None:
            c["kmemsize"] = Counter("kmemsize", kernel, None, None, None, None, True,
                                    "held only (memory.stat kernel); cgroup v2 has no kernel memory limit")
        c["numproc"] = self._numproc()
        events = self._keyed("memory.events") or {}
        c["physpages"] = Counter("physpages", _pages(current), _pages(m("memory.peak")), _pages(m("memory.high")),
                                 _pages(m("memory.max")), events.get("max"), True)
        c["oomguarpages"] = Counter("oomguarpages", _pages(current), None, None, None, events.get("oom_kill"),
                                    True, "failcnt: oom kills")
        if self._read("memory.swap.current") is not None:
            c["swappages"] = Counter("swappages", _pages(m("memory.swap.current")), _pages(m("memory.swap.peak")),
                                     _pages(m("memory.swap.high")), _pages(m("memory.swap.max")),
                                     self._keyed_value("memory.swap.events", "max"), True)
        return c

    def _numproc(self) -> Counter:
        pids = lambda f: self._file("pids", f)  # noqa: E731
        if self._read(pids("pids.current")) is None:
            return Counter("numproc", None, None, None, None, None, False, "pids controller not available")
        return Counter("numproc", self._int(pids("pids.current")), self._int(pids("pids.peak")), None,
                       self._int(pids("pids.max")), self._keyed_value(pids("pids.events"), "max"), True)

    # -- usage -----------------------------------------------------------
    def usage(self) -> Usage:
        """CPU time, I/O bytes, OOM kills and task count of the running container.

        v1 blkio's plain counters cover only the cgroup's own tasks, not child cgroups
        that a systemd inside the container creates; the *_recursive files are
        preferred for that reason.  cpuacct, io.stat and memory.events are
        hierarchical already."""
        if self.version == 1:
            cpu_ns = self._int("cpuacct/cpuacct.usage")
            text = self._read("blkio/blkio.throttle.io_service_bytes_recursive")
            if text is None:
                text = self._read("blkio/blkio.throttle.io_service_bytes")
            read, write = _blkio_bytes(text)
            oom = self._keyed_value("memory/memory.oom_control", "oom_kill")
            nproc = self._int("pids/pids.current")
        else:
            usec = self._keyed_value("cpu.stat", "usage_usec")
            cpu_ns = None if usec is None else usec * 1000
            read, write = _io_stat_bytes(self._read("io.stat"))
            oom = self._keyed_value("memory.events", "oom_kill")
            nproc = self._int("pids.current")
        return Usage(cpu_ns=cpu_ns, io_read_bytes=read, io_write_bytes=write, oom_kills=oom, nproc=nproc)


def cpu_cap_percent(cpulimit: int | None, cpus: int | None) -> int | None:
    """The CPU a container may use, in % of one CPU: min(cpulimit %, cpus * 100 %), as
    `vzctl set --cpulimit/--cpus` meant it; None when neither limits the CPU."""
    caps = [cap for cap in (cpulimit, cpus * 100 if cpus else None) if cap]
    return min(caps) if caps else None


def cpu_quota_us(limits: Limits) -> int | None:
    """CFS quota per 100 ms period for cpu_cap_percent; None when nothing limits the CPU."""
    cap = cpu_cap_percent(limits.cpulimit, limits.cpus)
    if cap is None:
        return None
    return max(MIN_QUOTA_US, cap * CPU_PERIOD_US // 100)


def io_weight(ioprio: int) -> int:
    """OpenVZ ioprio 0..7 to a proportional I/O weight 100..800 (default 4 -> 500).

    The value fits blkio.bfq.weight (1..1000), legacy blkio.weight (10..1000) and v2
    io.weight (1..10000).  Weights only act on devices scheduled by BFQ (v1) or with
    an io controller policy (v2)."""
    if not 0 <= ioprio <= 7:
        raise ValueError(f"ioprio must be 0..7, not {ioprio}")
    return 100 + ioprio * 100


def _blkio_bytes(text: str | None) -> tuple[int | None, int | None]:
    """Sum "MAJ:MIN Read N" / "MAJ:MIN Write N" over devices, ignoring the Total line."""
    if text is None:
        return None, None
    read = write = 0
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2].isdigit():
            if parts[1] == "Read":
                read += int(parts[2])
            elif parts[1] == "Write":
                write += int(parts[2])
    return read, write


def _io_stat_bytes(text: str | None) -> tuple[int | None, int | None]:
    """Sum rbytes= and wbytes= over the devices of a v2 io.stat."""
    if text is None:
        return None, None
    read = write = 0
    for line in text.splitlines():
        for field in line.split()[1:]:
            key, _, value = field.partition("=")
            if value.isdigit():
                if key == "rbytes":
                    read += int(value)
                elif key == "wbytes":
                    write += int(value)
    return read, write


def _note_mismatches(counters: dict[str, Counter], limits: Limits) -> None:
    """Append a note where the kernel's limit is not what the panel stored."""
    expected = {
        ("physpages", "limit"): _mb_pages(limits.ram_mb),
        ("physpages", "barrier"): _mb_pages(limits.ram_barrier_mb),
        ("swappages", "limit"): _mb_pages(limits.swap_mb) if limits.ram_mb is not None else None,
        ("numproc", "limit"): limits.numproc,
    }
    for (name, field), want in expected.items():
        counter = counters.get(name)
        if want is None or counter is None or not counter.measured:
            continue
        have = getattr(counter, field)
        if have != want:
            shown = "unlimited" if have is None else str(have)
            text = f"panel {field} {want} but the kernel has {shown}"
            counter.note = f"{counter.note}; {text}" if counter.note else text


_ROW = "%10s  %-12s %20s %20s %20s %20s %20s"


def format_user_beancounters(rows: list[tuple[str, list[Counter]]], version: str = "2.5") -> str:
    """Text in the layout of OpenVZ's /proc/user_beancounters, so scripts and eyes
    trained on it keep working.

    `rows` are (uid, counters) pairs, counters as `Cgroup.beancounters` returns them
    (already in OpenVZ units: pages for *pages, bytes for kmemsize/tcpsndbuf).  The
    uid ("101:") stands on a container's first line only.  An unlimited barrier or
    limit prints as 9223372036854775807, as OpenVZ printed it.  Deliberate departure
    from OpenVZ: a counter the kernel cannot measure prints "-" in every column, and
    a single value the kernel does not provide (e.g. maxheld of swap on v1) prints
    "-", never 0, so nobody mistakes "unknown" for "nothing used".
    """
    lines = [f"Version: {version}", _ROW % ("uid", "resource", "held", "maxheld", "barrier", "limit", "failcnt")]
    for uid, counters in rows:
        for i, counter in enumerate(counters):
            label = f"{uid}:" if i == 0 else ""
            if not counter.measured:
                cells = ["-"] * 5
            else:
                cells = [_cell(counter.held), _cell(counter.maxheld), _cell(counter.barrier, LONG_MAX),
                         _cell(counter.limit, LONG_MAX), _cell(counter.failcnt)]
            lines.append(_ROW % (label, counter.resource, *cells))
    return "\n".join(lines) + "\n"


def _cell(value: int | None, none_as: int | None = None) -> str:
    if value is None:
        return "-" if none_as is None else str(none_as)
    return str(value)


_probed: dict[str, frozenset[str] | None] = {}
CONTAINER_CONTROLLERS = ("cpu", "io", "memory", "pids")  # v2: what a container's limits need


def child_cgroup_files(base: Path) -> frozenset[str] | None:
    """The files the kernel gives a new child cgroup of `base`: asked of an empty child made and
    removed here (once per process). None when `base` is not a cgroup filesystem (a real
    cgroup directory always has cgroup.procs) or no child can be made there."""
    key = str(base)
    if key not in _probed:
        probe = base / f"vzpanel-probe-{os.getpid()}"
        try:
            probe.mkdir()
        except FileExistsError:
            pass
        except OSError:
            return None  # not ours to create children in: the config keys decide at start
        try:
            files = frozenset(entry.name for entry in probe.iterdir())
            _probed[key] = files if "cgroup.procs" in files else None
        finally:
            try:
                probe.rmdir()
            except OSError:
                pass
    return _probed[key]


def enable_for_children(root: Path, controller: str) -> bool:
    """v2: make `controller` available to the root's children (containers), as LXC needs it and
    as systemd does for the controllers its own units use; a fresh host may not have it on.
    True when it is on. Only controllers in CONTAINER_CONTROLLERS, only when the kernel offers
    them (cgroup.controllers); the probe cache is dropped when something changed."""
    if controller not in CONTAINER_CONTROLLERS:
        return False
    try:
        if controller in (root / "cgroup.subtree_control").read_text().split():
            return True
        if controller not in (root / "cgroup.controllers").read_text().split():
            return False
        with open(root / "cgroup.subtree_control", "w") as fh:
            fh.write(f"+{controller}")
    except OSError:
        return False
    _probed.pop(str(root), None)
    return True
