"""vzctl for the panel: the OpenVZ verbs, going through the same tasks as the UI and the API.

    vzctl create CTID --ostemplate NAME [--config PLAN] [--hostname H] [--name N] [--ipadd ADDR|auto]...
                 [--userpasswd root:PASSWORD] [--ssh-public-keys FILE]
    vzctl start|stop|restart|suspend|resume|mount|umount|destroy|status CTID
    vzctl set CTID [--hostname H] [--ram 1G] [--diskspace 2G:2.2G] ... [--applyconfig PLAN] [--save]
    vzctl exec|exec2 CTID COMMAND [ARGS...]      vzctl runscript CTID FILE
    vzctl enter|console CTID      (a shell or the console, through the host's agent like the Console tab)

OpenVZ verbs and options that have no meaning here are refused with the reason.
"""
from __future__ import annotations

import argparse
import os
import sys

from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError
from django.http import Http404

from accounts.permissions import get_container_for_user, placeable_hosts
from containers import services
from containers.engine.units import BLOCK, MIB, PAGE
from panel import validators
from panel.validators import argparse_type
from tasks.cli import acting_user, finish_task, follow_output
from tasks.services import TaskError


def _size_or_unit(unit_bytes: int):
    """A vzctl value in MiB: with a K/M/G/T suffix a size (P: 4 KiB pages, B: bytes), without one a count of `unit_bytes` units."""
    return argparse_type(lambda text: validators.size_mb(text, unit_bytes))


size_mb = _size_or_unit(MIB)  # 512M, 2G, 2.5G, 1048576K or a plain number of MiB


def pair(convert):
    """barrier[:limit] -> (barrier, limit); a single value sets both, as vzctl does."""
    def parse(value: str):
        soft, _, hard = value.partition(":")
        soft_v = convert(soft)
        return soft_v, convert(hard) if hard else soft_v
    return parse


count = argparse_type(lambda text: validators.whole_number(text, "The number", 0))


def count_or_unlimited(text: str) -> int | None:
    """vzctl --numproc: a count (no unit suffix), or "unlimited" (None: no process limit)."""
    return None if text == "unlimited" else count(text)


diskspace_mb = pair(_size_or_unit(BLOCK))      # 1K blocks unless suffixed
pages_mb = pair(_size_or_unit(PAGE))           # 4 KiB pages unless suffixed
counts = pair(count)
hostname = argparse_type(validators.validate_hostname)
# "" clears the name, as on the settings page.
name_alias = argparse_type(lambda text: validators.validate_name_alias(text) if text else None)

# Beancounters users may name with --NAME barrier[:limit], and what they set here.
MAPPED_COUNTERS = {"numproc", "physpages", "swappages"}
UNMAPPED_COUNTERS = ("kmemsize", "lockedpages", "privvmpages", "shmpages", "vmguarpages", "oomguarpages",
                     "numtcpsock", "numflock", "numpty", "numsiginfo", "tcpsndbuf", "tcprcvbuf", "othersockbuf",
                     "dgramrcvbuf", "numothersock", "dcachesize", "numfile", "numiptent")


def yes_no(value: str) -> bool:
    if value.lower() in ("yes", "y", "on", "1"):
        return True
    if value.lower() in ("no", "n", "off", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected yes or no, not {value!r}")


# vzctl set options that mean nothing here, and why: refused rather than silently dropped.
UNMAPPED_OPTIONS = {
    "capability": "every container here has the same capabilities inside its own user namespace; none are granted",
    "devnodes": "containers get no host device nodes here",
    "devices": "containers get no host devices here",
    "features": "OpenVZ's kernel features (nfs, sit, ipip, ppp, ipgre, bridge, nfsd) have no switch on this kernel",
    "iptables": "netfilter modules belong to the host kernel, not to a container",
    "netfilter": "netfilter modules belong to the host kernel, not to a container",
    "netdev_add": "host network devices are not moved into containers here; use --netif_add",
    "netdev_del": "host network devices are not moved into containers here; use --netif_del",
    "quotatime": "the disk quota is the container's own XFS disk image: there is no grace time",
    "quotaugidlimit": "user and group quotas inside a container are not offered here",
    "meminfo": "/proc/meminfo inside a container is LXC's, set from --ram",
    "cpumask": "containers are not pinned to CPUs here; use --cpus",
    "nodemask": "containers are not pinned to NUMA nodes here",
    "vm_overcommit": "memory is limited by --ram and --swap (cgroups), not by an overcommit ratio",
    "disabled": "there is no disabled flag here; stop the container, or let an administrator expire it",
    "noatime": "the disk image's mount options are the panel's",
    "bootorder": "containers with --onboot yes start in CTID order",
    "iolimit": "I/O is weighted by --ioprio here; there is no bandwidth limit",
    "iopslimit": "I/O is weighted by --ioprio here; there is no IOPS limit",
    "ha_enable": "there is no HA cluster here; vzmigrate moves containers",
    "ha_prio": "there is no HA cluster here; vzmigrate moves containers",
    "private": "where a container lives is the host's lxcpath",
    "root": "where a container lives is the host's lxcpath",
    "mount_opts": "the disk image's mount options are the panel's",
    "applyconfig_map": "--applyconfig applies a plan's limits; there are no groups of them",
}
# vzctl create options that mean nothing here, and why.
CREATE_UNMAPPED = {
    "private": UNMAPPED_OPTIONS["private"],
    "root": UNMAPPED_OPTIONS["root"],
    "layout": "the disk layout is the storage pool's: choose one with --storage",
    "ve_layout": "the disk layout is the storage pool's: choose one with --storage",
}
# vzctl verbs that have no counterpart (yet), and why.
UNMAPPED_VERBS = {
    "chkpnt": "no checkpoints are written here (see vzctl suspend)",
    "restore": "no checkpoints are written here, so none can be restored; vzrestore restores backups",
    "snapshot-mount": "snapshots are not mounted here; snapshot-switch rolls a stopped container back to one",
    "snapshot-umount": "snapshots are not mounted here; snapshot-switch rolls a stopped container back to one",
    "quotaon": "the disk quota is the storage pool's (an XFS image or a btrfs qgroup): it is always on",
    "quotaoff": "the disk quota is the storage pool's (an XFS image or a btrfs qgroup): it is always on",
    "quotainit": "the disk quota is the storage pool's (an XFS image or a btrfs qgroup): nothing to initialise",
    "convert": "a container stays on the storage pool it was created on; back it up and restore it on another",
    "compact": "the disk image is sparse; there is nothing to compact",
}


ENTER_PIPE_TIMEOUT = 3600  # seconds: vzctl enter with its commands on a pipe


def refuse_unmapped(opts: dict) -> None:
    """Refuse OpenVZ options that have no meaning here, each with its reason; nothing is changed."""
    unmapped = [n for n in UNMAPPED_COUNTERS if opts.get(n) is not None]
    if unmapped:
        raise CommandError(f"{', '.join(unmapped)}: no limit for this on a mainline kernel (cgroups have no "
                           "counterpart, or this kernel ignores it); the panel shows it as measured or not measured. "
                           "Nothing was changed.")
    reasons = [f"--{name}: {why}" for name, why in UNMAPPED_OPTIONS.items() if opts.get(name) is not None]
    if reasons:
        raise CommandError("; ".join(reasons) + ". Nothing was changed.")


def limit_changes(opts: dict) -> dict:
    """The container fields a `vzctl set` command line changes."""
    refuse_unmapped(opts)
    changes = {}
    for opt, key in (("ram", "ram_mb"), ("swap", "swap_mb"), ("cpus", "cpus"), ("cpuunits", "cpuunits"),
                     ("cpulimit", "cpulimit"), ("ioprio", "ioprio")):
        if opts.get(opt) is not None:
            changes[key] = opts[opt]
    if opts.get("numproc") is not None:
        changes["numproc"] = opts["numproc"][1]  # pids has a limit only
    if opts.get("physpages") is not None:
        barrier, changes["ram_mb"] = opts["physpages"]
        changes["ram_barrier_mb"] = barrier or None  # vswap's PHYSPAGES="0:LIMIT": no barrier
    if opts.get("swappages") is not None:
        changes["swap_mb"] = opts["swappages"][1]
    if opts.get("diskspace") is not None:
        changes["disk_soft_mb"], changes["disk_mb"] = opts["diskspace"]
    if opts.get("diskinodes") is not None:
        changes["diskinodes_soft"], changes["diskinodes"] = opts["diskinodes"]
    return changes


def status_line(ctid, ct) -> str:
    """`vzctl status` in vzctl's own words: CTID N exist|deleted mounted|unmounted running|down [suspended].
    Unlike OpenVZ's stop, a stop here leaves the root filesystem mounted (the agent keeps every disk
    image mounted): a stopped container is unmounted only after vzctl umount, which the row records."""
    if ct is None:
        return f"CTID {ctid} deleted unmounted down"
    if ct.status == "running":
        return f"CTID {ct.ctid} exist mounted running"
    if ct.status == "frozen":
        return f"CTID {ct.ctid} exist mounted down suspended"
    mounted = ct.status in ("stopped", "unknown") and not ct.unmounted
    return f"CTID {ct.ctid} exist {'mounted' if mounted else 'unmounted'} down"


def shell_words(words: list[str]) -> list[str]:
    """vzctl exec's command: after an optional --, the words to run; one word with blanks is a shell
    command line, as vzctl gave it to the container's shell ("ps ax | grep sshd")."""
    words = words[1:] if words[:1] == ["--"] else words
    if len(words) == 1 and any(c.isspace() for c in words[0]):
        return ["/bin/sh", "-c", words[0]]
    return words


class Command(BaseCommand):
    help = "Manage containers with OpenVZ's vzctl verbs (queued as tasks, run by the host agent)."

    def add_arguments(self, parser):
        parser.add_argument("--user", help="act as this panel user (default: the first superuser)")
        parser.add_argument("--timeout", type=float, default=None, help="give up waiting after this many seconds")
        parser.add_argument("--quiet", action="store_true", help="print no task log, only errors")
        parser.add_argument("--verbose", action="store_true", help="accepted for vzctl compatibility")
        sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
        p = sub.add_parser("create", help="create a container from an OS template")
        p.add_argument("ctid", type=argparse_type(validators.parse_ctid))
        p.add_argument("--ostemplate", required=True)
        p.add_argument("--hostname", type=hostname)
        p.add_argument("--name", type=name_alias)
        p.add_argument("--host", help="the host to create it on (default: the panel picks one by capacity)")
        p.add_argument("--tenant", help="tenant slug: whose quota it counts against")
        p.add_argument("--plan", "--config", dest="plan",
                       help="plan name (named limits, as vzctl's --config took a sample like vps.basic)")
        p.add_argument("--onboot", type=yes_no, default=False)
        p.add_argument("--description", default="")
        p.add_argument("--ipadd", action="append", metavar="ADDR|auto",
                       help="a routed (venet) address, or auto: the next free one of the tenant's IP pool (--pool); "
                            "repeat for more. Checked before anything is made. Default: none")
        p.add_argument("--pool", help="the IP pool for --ipadd auto (default: the first the tenant may use)")
        p.add_argument("--userpasswd", metavar="root:PASSWORD",
                       help="root's password, as vzctl set --userpasswd (root only at create): hashed at once, never "
                            "stored or logged. root:- reads it from standard input. Default: the template's (none)")
        p.add_argument("--ssh-public-keys", metavar="FILE",
                       help="public keys for root's authorized_keys, one per line (as pct create --ssh-public-keys; "
                            "- for standard input). Default: none")
        p.add_argument("--storage", metavar="POOL", help="the host's storage pool to create it on (default: the "
                                                        "host's default pool; see the host's page)")
        p.add_argument("--override-capacity", action="store_true",
                       help="administrators: create even if the host's promise policy (RAM, CPU, disk; see the "
                            "host's page) has no room left. OpenVZ's vzctl had no such check to override; "
                            "the panel refuses what would promise more than a host has. Audited.")
        for name in CREATE_UNMAPPED:
            p.add_argument(f"--{name}", metavar="VALUE", help=argparse.SUPPRESS)
        for verb, what in (("destroy", "destroy a stopped container: its disk and settings"),
                           ("delete", "the same as destroy"),
                           ("start", "start a container"), ("stop", "stop a container (clean shutdown, then kill)"),
                           ("restart", "stop and start a container"),
                           ("status", "exist/deleted, mounted, running/down, in vzctl's words"),
                           ("suspend", "freeze a running container (no checkpoint is written)"),
                           ("resume", "thaw a suspended container"),
                           ("mount", "mount its root filesystem at LXCPATH/CTID/rootfs; the agent keeps it mounted"),
                           ("umount", "unmount a stopped container's root filesystem; it stays so until mount "
                                      "or start"),
                           ("enter", "an interactive root shell inside, on whatever host it runs"),
                           ("console", "attach to its console, where its init runs a getty (Ctrl-a q leaves)")):
            sub.add_parser(verb, help=what).add_argument("ctid")
        p = sub.add_parser("set", help="change settings and limits (always saved here)")
        p.add_argument("ctid")
        p.add_argument("--hostname", type=hostname)
        p.add_argument("--name", type=name_alias)
        p.add_argument("--onboot", type=yes_no)
        p.add_argument("--description")
        p.add_argument("--ram", type=size_mb, help="RAM, e.g. 512M or 2G")
        p.add_argument("--swap", type=size_mb, help="swap, e.g. 256M")
        p.add_argument("--cpus", type=count)
        p.add_argument("--cpuunits", type=count, help="relative CPU weight (default 1000)")
        p.add_argument("--cpulimit", type=count, help="percent of one CPU; 0 = no limit")
        p.add_argument("--ioprio", type=count, help="I/O priority 0..7 (default 4)")
        p.add_argument("--numproc", type=pair(count_or_unlimited), help="processes, barrier[:limit] or unlimited")
        p.add_argument("--physpages", type=pages_mb, help="RAM barrier[:limit], in 4 KiB pages or with a suffix")
        p.add_argument("--swappages", type=pages_mb, help="swap [barrier:]limit, in 4 KiB pages or with a suffix")
        p.add_argument("--diskspace", type=diskspace_mb, help="soft[:hard], 1K blocks or with a suffix (2G:2.2G)")
        p.add_argument("--diskinodes", type=counts, help="soft[:hard] inodes")
        p.add_argument("--applyconfig", metavar="PLAN", help="take the limits of this plan (like a vps.basic sample)")
        for name in (*UNMAPPED_COUNTERS, *UNMAPPED_OPTIONS):
            p.add_argument(f"--{name}", metavar="VALUE", help=argparse.SUPPRESS)
        p.add_argument("--userpasswd", metavar="USER:PASSWORD",
                       help="set a password inside the running container (never stored or logged)")
        p.add_argument("--ipadd", action="append", metavar="ADDR|auto", help="add a routed (venet) address")
        p.add_argument("--ipdel", action="append", metavar="ADDR|all", help="remove a venet address")
        p.add_argument("--pool", help="the IP pool for --ipadd auto")
        p.add_argument("--netif_add", action="append", metavar="IFNAME[,MAC,HOST_IFNAME,HOST_MAC,BRIDGE]",
                       help="add a bridged (veth) interface")
        p.add_argument("--netif_del", action="append", metavar="IFNAME|all")
        p.add_argument("--nameserver", action="append", metavar="ADDR", help="up to 3",
                       type=argparse_type(lambda text: str(validators.parse_ip(text, "a nameserver address"))))
        p.add_argument("--searchdomain", type=argparse_type(validators.clean_searchdomain))
        p.add_argument("--override-capacity", action="store_true",
                       help="administrators: raise limits even past what the host can promise")
        p.add_argument("--save", action="store_true", help="accepted: every set is saved here")
        p.add_argument("--setmode", choices=("restart", "ignore"),
                       help="accepted: nothing here waits for a restart (limits apply at once)")
        for verb, what in (("exec", "run a command inside; exits with its status"),
                           ("exec2", "the same as exec: exits with the command's status")):
            p = sub.add_parser(verb, help=what)
            p.add_argument("ctid")
            p.add_argument("--exec-timeout", type=count, default=600)
            p.add_argument("command", nargs=argparse.REMAINDER)
        p = sub.add_parser("runscript", help="copy a local script in and run it there")
        p.add_argument("ctid")
        p.add_argument("script", help="the script's path on this machine")
        p.add_argument("--exec-timeout", type=count, default=600)
        p.add_argument("script_args", nargs=argparse.REMAINDER, metavar="ARG")
        # Snapshots (containers on btrfs pools). OpenVZ named them by a UUID (--id) and gave them a
        # --name; here the name is the identity, and --id is taken as the name.
        p = sub.add_parser("snapshot", help="take a snapshot (a running container is frozen for the instant)")
        p.add_argument("ctid")
        p.add_argument("--name", "--id", dest="snapshot_name", help="its name (default: snap-DATE-TIME)")
        p.add_argument("--description", default="")
        p.add_argument("--skip-suspend", action="store_true", help="accepted: no memory is ever dumped here")
        p.add_argument("--skip-config", action="store_true", help="accepted: the panel keeps the configuration")
        for verb, what in (("snapshot-switch", "roll a stopped container back to a snapshot"),
                           ("snapshot-delete", "delete a snapshot")):
            p = sub.add_parser(verb, help=what)
            p.add_argument("ctid")
            p.add_argument("--id", "--name", dest="snapshot_name", required=True, help="the snapshot's name")
            if verb == "snapshot-switch":
                p.add_argument("--skip-resume", action="store_true", help="accepted: it stays stopped")
                p.add_argument("--skip-config", action="store_true", help="accepted")
        p = sub.add_parser("snapshot-list", help="list a container's snapshots")
        p.add_argument("ctid")
        p.add_argument("-H", "--no-header", action="store_true")
        for verb, why in UNMAPPED_VERBS.items():
            p = sub.add_parser(verb, help="not available here (it says why)")
            p.add_argument("rest", nargs=argparse.REMAINDER)

    def handle(self, *args, **opts):
        verb = opts["verb"]
        if verb in UNMAPPED_VERBS:
            raise CommandError(f"vzctl {verb}: {UNMAPPED_VERBS[verb]}")
        user = acting_user(opts["user"])
        if opts["quiet"]:
            self.stdout = type(self.stdout)(open(os.devnull, "w"))
        try:
            if verb == "create":
                return self._create(user, opts)
            ct = get_container_for_user(user, opts["ctid"], manage=verb not in ("status", "snapshot-list"))
        except TaskError as exc:
            raise CommandError(str(exc)) from None
        except Http404:
            if verb == "status":
                self.stdout.write(status_line(opts["ctid"], None))
                return
            raise CommandError(f"Container {opts['ctid']} does not exist") from None
        except PermissionDenied as exc:
            raise CommandError(str(exc)) from None
        try:
            if verb == "status":
                self.stdout.write(status_line(ct.ctid, ct))
                if ct.lock_task_id:
                    self.stderr.write(f"(locked by task #{ct.lock_task_id})")
                return
            if verb == "enter" and not os.isatty(sys.stdin.fileno()):
                # Commands on a pipe, not a person at a terminal: root's shell reads them, as with
                # vzctl exec CTID - (a terminal's shell would ask the pipe where its cursor is).
                return self._exec(services.exec_in_container(ct, user, ["/bin/sh"], ENTER_PIPE_TIMEOUT,
                                                             stdin=sys.stdin.read()), opts)
            if verb in ("enter", "console"):
                return self._console(ct, user, verb)
            if verb in ("start", "stop", "restart", "suspend", "resume", "mount", "umount"):
                task = getattr(services, f"{verb}_container")(ct, user)
            elif verb in ("destroy", "delete"):
                task = services.destroy_container(ct, user, confirm=ct.ctid)
            elif verb == "set":
                return self._set(ct, user, opts)
            elif verb.startswith("snapshot"):
                return self._snapshot(ct, user, verb, opts)
            elif verb in ("exec", "exec2"):
                argv = shell_words(opts["command"])
                stdin = None
                if argv == ["-"]:  # vzctl exec CTID -: the commands come on standard input
                    argv, stdin = ["/bin/sh", "-s"], sys.stdin.read()
                task = services.exec_in_container(ct, user, argv, opts["exec_timeout"], stdin=stdin)
                return self._exec(task, opts)
            elif verb == "runscript":
                try:
                    with open(opts["script"], encoding="utf-8", errors="surrogateescape") as fh:
                        script = fh.read(services.MAX_EXEC_INPUT + 1)
                except OSError as exc:
                    raise CommandError(f"{opts['script']}: {exc.strerror}") from None
                task = services.run_script(ct, user, script, opts["script_args"], opts["exec_timeout"])
                return self._exec(task, opts)
        except TaskError as exc:
            raise CommandError(str(exc)) from None
        self._finish(task, opts)

    def _set(self, ct, user, opts):
        changes = {k: opts[k] for k in ("hostname", "name", "onboot", "description") if opts.get(k) is not None}
        changes.update(limit_changes(opts))
        if opts.get("applyconfig"):
            changes = {**self._plan_limits(user, opts["applyconfig"]), **changes}
        if not opts["save"]:
            self.stdout.write("Note: every set is saved here, as with --save")
        if opts.get("setmode"):
            self.stdout.write(f"Note: --setmode {opts['setmode']}: nothing here needs a restart to take effect")
        did = False
        if opts.get("userpasswd"):
            who, sep, password = opts["userpasswd"].partition(":")
            if not sep:
                raise CommandError("--userpasswd takes USER:PASSWORD")
            self._finish(services.set_user_password(ct, user, who, password), opts)
            did = True
        did = self._network(ct, user, opts) or did
        if did and not changes:
            return
        if not changes:
            raise CommandError("nothing to set: give --hostname, --name, --onboot, --description, a limit "
                               "(--ram, --swap, --cpus, --cpuunits, --cpulimit, --numproc, --physpages, "
                               "--diskspace, --diskinodes, --ioprio), --applyconfig, --userpasswd or a network "
                               "option (--ipadd, --ipdel, --netif_add, --netif_del, --nameserver, --searchdomain)")
        task = services.update_container(ct, user, override_capacity=opts["override_capacity"], **changes)
        if task is None:
            self.stdout.write(f"Saved {', '.join(sorted(changes))} of CT {ct.ctid}")
            return
        self._finish(task, opts)

    def _snapshot(self, ct, user, verb: str, opts):
        """vzctl snapshot, snapshot-switch, snapshot-delete and snapshot-list (containers on btrfs pools)."""
        from storage import services as storage
        if verb == "snapshot-list":
            rows = storage.visible_snapshots(ct)
            if not opts["no_header"]:
                self.stdout.write(f"{'NAME':<24} {'DATE':<19} {'FROZEN':>9}  DESCRIPTION")
            for snap in rows:
                frozen = f"{snap.frozen_ms:.1f}ms" if snap.frozen_ms is not None else "-"
                self.stdout.write(f"{snap.name:<24} {snap.created_at:%Y-%m-%d %H:%M:%S} {frozen:>9}  "
                                  f"{snap.description}")
            return
        if verb == "snapshot":
            task = storage.take_snapshot(ct, user, opts["snapshot_name"], opts["description"])
        elif verb == "snapshot-switch":
            task = storage.switch_snapshot(ct, user, opts["snapshot_name"])
        else:
            task = storage.delete_snapshot(ct, user, opts["snapshot_name"])
        self._finish(task, opts)

    def _plan_limits(self, user, name: str) -> dict:
        """vzctl set --applyconfig NAME: the limits of the plan NAME (the panel's config samples)."""
        from accounts.permissions import visible_plans
        plan = visible_plans(user).filter(name=name).first()
        if plan is None:
            raise CommandError(f"no plan {name!r} offered to you (plans are the panel's vps.basic-like samples)")
        return plan.limits()

    def _network(self, ct, user, opts) -> bool:
        """The network options of `vzctl set`, each its own task, in vzctl's order. True if any."""
        from network import services as net
        did = False
        if opts.get("ipdel"):
            self._finish(net.remove_addresses(ct, user, "all" if "all" in opts["ipdel"] else opts["ipdel"]), opts)
            did = True
        if opts.get("ipadd"):
            self._finish(net.add_addresses(ct, user, opts["ipadd"], pool=opts.get("pool")), opts)
            did = True
        for ifname in opts.get("netif_del") or []:
            self._finish(net.remove_netif(ct, user, ifname), opts)
            did = True
        for spec in opts.get("netif_add") or []:
            self._finish(net.add_netif(ct, user, spec), opts)
            did = True
        if opts.get("nameserver") or opts.get("searchdomain") is not None:
            self._finish(net.set_dns(ct, user, opts.get("nameserver"), opts.get("searchdomain")), opts)
            did = True
        return did

    def _create(self, user, opts):
        reasons = [f"--{name}: {why}" for name, why in CREATE_UNMAPPED.items() if opts.get(name) is not None]
        if reasons:
            raise CommandError("; ".join(reasons) + ". Nothing was created.")
        hosts = placeable_hosts(user)
        host = hosts.filter(name=opts["host"]).first() if opts["host"] else None
        if opts["host"] and host is None:
            raise CommandError(f"no host {opts['host']!r}")
        if not hosts.exists():
            raise CommandError("no host is registered")  # without --host the panel places it by capacity
        ctid = opts["ctid"]
        tenant = plan = None
        from accounts.permissions import creatable_tenants, visible_plans
        # Among what this user may use only: one answer whether the name does not exist or is not theirs.
        if opts["tenant"]:
            tenant = creatable_tenants(user).filter(slug=opts["tenant"]).first()
            if tenant is None:
                raise CommandError(f"no tenant {opts['tenant']!r} that you may create containers in")
        if opts["plan"]:
            plan = visible_plans(user).filter(name=opts["plan"]).first()
            if plan is None:
                raise CommandError(f"no plan {opts['plan']!r} offered to you")
        password, keys = self._create_credentials(opts)
        task = services.create_container(
            user=user, ctid=ctid, ostemplate=opts["ostemplate"], host=host,
            hostname=opts["hostname"] or f"ct{ctid}", name=opts["name"], onboot=opts["onboot"],
            description=opts["description"], tenant=tenant, plan=plan, override_capacity=opts["override_capacity"],
            storage=opts["storage"],
            addresses=opts["ipadd"] or [], ip_pool=opts.get("pool"), root_password=password, ssh_public_keys=keys)
        del password
        ct = task.container
        addresses = task.params.get("addresses") or []
        # Every default it used, said before the wait: nothing about the new container is a surprise.
        self.stdout.write(f"Creating CT {ct.ctid} on {ct.host.name} from {ct.ostemplate}: RAM {ct.ram_mb} MiB, "
                          f"swap {ct.swap_mb} MiB, {ct.cpus} CPU{'s' if ct.cpus != 1 else ''}, disk {ct.disk_mb} MiB, "
                          f"{ct.diskinodes} inodes, cpuunits {ct.cpuunits}, ioprio {ct.ioprio}"
                          + (f", plan {ct.plan.name}" if ct.plan else "")
                          + f"; addresses {', '.join(addresses) if addresses else 'none'}"
                          + f"; root password {'set' if task.params.get('root_password') else 'not set'}"
                          + f"; {len(keys)} SSH key{'s' if len(keys) != 1 else ''}")
        self._finish(task, opts)

    def _create_credentials(self, opts) -> tuple[str | None, list[str]]:
        """vzctl create --userpasswd root:PASSWORD (root:- reads it from standard input) and
        --ssh-public-keys FILE (- for standard input), read but not checked here: the service does."""
        password = None
        if opts.get("userpasswd") is not None:
            who, sep, password = opts["userpasswd"].partition(":")
            if not sep or who != "root":
                raise CommandError("--userpasswd takes root:PASSWORD at create (other users exist only once the "
                                   "container does: vzctl set --userpasswd USER:PASSWORD). Nothing was created.")
            if password == "-":
                password = sys.stdin.readline().rstrip("\n")
        keys: list[str] = []
        if opts.get("ssh_public_keys"):
            name = opts["ssh_public_keys"]
            if name == "-" and password is not None and opts["userpasswd"] == "root:-":
                raise CommandError("standard input can give the password or the keys, not both. Nothing was created.")
            try:
                if name == "-":
                    text = sys.stdin.read(1 << 20)
                else:
                    with open(name, encoding="utf-8") as fh:
                        text = fh.read(1 << 20)
            except (OSError, UnicodeDecodeError) as exc:
                raise CommandError(f"--ssh-public-keys {name}: {exc}. Nothing was created.") from None
            keys = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
        return password, keys

    def _console(self, ct, user, verb: str):
        """vzctl enter / console: a console session through the host's agent, as in the browser."""
        from consoles.models import ConsoleMode
        from consoles.services import ConsoleRefused
        from consoles.shell import NORMAL_ENDS, attach, open_session
        try:
            session = open_session(user, ct, ConsoleMode.SHELL if verb == "enter" else ConsoleMode.CONSOLE)
        except (PermissionDenied, ConsoleRefused) as exc:
            raise CommandError(str(exc)) from None
        plain = str  # a greeting, not an error: no red on a terminal
        self.stderr.write(f"entered into CT {ct.ctid}" if verb == "enter" else
                          f"Attached to the console of CT {ct.ctid} (Ctrl-a q to leave)", plain)
        self.stderr.flush()
        reason = attach(session)
        self.stderr.write(f"exited from CT {ct.ctid}" if verb == "enter" else f"Left the console of CT {ct.ctid}",
                          plain)
        if reason not in NORMAL_ENDS:
            sys.exit(1)

    def _finish(self, task, opts):
        finish_task(task, self.stdout, timeout=opts["timeout"])

    def _exec(self, task, opts):
        """The command's output as it comes, then its exit status as ours."""
        streamed = follow_output(task, sys.stdout.buffer, sys.stderr.buffer, timeout=opts["timeout"])
        task = finish_task(task, self.stdout, timeout=opts["timeout"], quiet=True)
        if not streamed:
            sys.stdout.write(task.result.get("stdout", ""))
            sys.stderr.write(task.result.get("stderr", ""))
        sys.stdout.flush()
        sys.exit(task.result.get("exit_code", 1))
