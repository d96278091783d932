"""manage.py hostctl: the panel's hosts at the shell.

    hostctl list
    hostctl add NAME [--lxcpath P] [--template-dir D] [--dump-dir D] [--ssh HOST[:PORT]]   (prints the token)
    hostctl token NAME        a new agent token (the old one stops working)
    hostctl revoke NAME       the agent stops; it can no longer use the queue
    hostctl ssh NAME ADDRESS [--repin]
    hostctl drain NAME [--reason TEXT] | undrain NAME
    hostctl evacuate NAME [--offline] [--no-wait]
    hostctl remove NAME
    hostctl capabilities [--json]   what this machine's kernel and tools can do for containers
"""
from django.core.management.base import BaseCommand, CommandError

from hosts import services
from hosts.models import Host
from tasks.choices import TaskStatus
from tasks.cli import acting_user, wait_for_task
from tasks.services import TaskError


class Command(BaseCommand):
    help = "List, add, drain, evacuate and remove hosts; issue and revoke their agents' tokens."

    def add_arguments(self, parser):
        parser.add_argument("--user", help="act as this panel user (default: the first superuser)")
        sub = parser.add_subparsers(dest="verb", required=True)
        sub.add_parser("list")
        sub.add_parser("capabilities").add_argument("--json", action="store_true")
        p = sub.add_parser("add")
        p.add_argument("name")
        p.add_argument("--lxcpath", default="/var/lib/lxc")
        p.add_argument("--template-dir", default="/var/lib/vz/template/cache")
        p.add_argument("--dump-dir", default="/var/lib/vz/dump")
        p.add_argument("--ssh", default="", help="where other hosts reach this host's sshd for migrations")
        for verb in ("token", "revoke", "undrain", "remove"):
            sub.add_parser(verb).add_argument("name")
        p = sub.add_parser("ssh")
        p.add_argument("name")
        p.add_argument("address")
        p.add_argument("--repin", action="store_true", help="forget the pinned host key")
        p = sub.add_parser("drain")
        p.add_argument("name")
        p.add_argument("--reason", default="")
        p = sub.add_parser("evacuate")
        p.add_argument("name")
        p.add_argument("--offline", action="store_true", help="stop running containers for the copy")
        p.add_argument("--no-wait", action="store_true")

    def handle(self, *args, **opts):
        from accounts.permissions import sees_infrastructure, visible_hosts
        verb = opts["verb"]
        if verb == "capabilities":  # this machine's, asked as root: no panel user or database involved
            import json
            from containers.engine.probes import host_capabilities
            found = host_capabilities()
            self.stdout.write(json.dumps(found.as_dict()) if opts["json"] else "\n".join(found.lines()))
            return
        user = acting_user(opts["user"])
        if not sees_infrastructure(user):  # as on the web: hosts are not part of a tenant's role
            raise CommandError(f"{user.username} may not administer hosts: hosts are not part of their role")
        if verb == "list":
            for h in visible_hosts(user):
                state = "drained" if h.is_drained else "active"
                self.stdout.write(f"{h.name:20} {state:8} {h.containers.count():4} CTs  {h.agent_status_text}"
                                  f"{'  token revoked' if not h.token_hash else ''}  {h.ssh_address or 'local'}")
            return
        try:
            if verb == "add":
                host, token = services.add_host(user, name=opts["name"], lxcpath=opts["lxcpath"],
                                                template_dir=opts["template_dir"], dump_dir=opts["dump_dir"],
                                                ssh_address=opts["ssh"])
                self.stdout.write(f"Added host {host.name}. Its agent's token (shown once):\n{token}")
                return
            host = Host.objects.filter(name=opts["name"]).first()
            if host is None:
                raise CommandError(f"no host {opts['name']!r}")
            if verb == "token":
                self.stdout.write(services.issue_token(user, host))
            elif verb == "revoke":
                services.revoke_token(user, host)
                self.stdout.write(f"Token of {host.name} revoked")
            elif verb == "ssh":
                services.set_ssh(user, host, opts["address"], repin=opts["repin"])
                self.stdout.write(f"{host.name}: SSH address {host.ssh_address or '(local)'}")
            elif verb == "drain":
                services.drain_host(user, host, opts["reason"])
                self.stdout.write(f"{host.name} drained")
            elif verb == "undrain":
                services.undrain_host(user, host)
                self.stdout.write(f"{host.name} takes new containers again")
            elif verb == "remove":
                services.remove_host(user, host, confirm=host.name)
                self.stdout.write(f"Host {opts['name']} removed")
            elif verb == "evacuate":
                task = services.evacuate_host(user, host, online=not opts["offline"])
                self.stdout.write(f"Task #{task.pk} queued: evacuate {host.name}")
                if not opts["no_wait"]:
                    task = wait_for_task(task, self.stdout)
                    if task.status != TaskStatus.OK:
                        raise CommandError(task.error)
        except TaskError as exc:
            raise CommandError(str(exc)) from None
