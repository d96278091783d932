"""Tenants, members, users, plans and classes: one function per operation, audited."""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import datetime

from django.contrib.sessions.models import Session
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from accounts import audit
from accounts.models import User
from panel import validators
from tasks.choices import TaskStatus
from tasks.services import TaskError, cancel_task

from .models import Membership, Plan, StudentClass, Tenant, TenantRole
from .quotas import check_quota


class NotAllowed(TaskError):
    http_status = 403


class InvalidRequest(TaskError):
    http_status = 400


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise NotAllowed(message)


# -- users ----------------------------------------------------------------------
def validate_username(username: str) -> None:
    try:
        validators.validate_panel_username(username)
    except ValidationError as exc:
        raise InvalidRequest(" ".join(exc.messages)) from None


def set_user_active(by, target: User, active: bool) -> int:
    """Enable or disable a user. Disabling logs them out everywhere and cancels their queued tasks."""
    from accounts.permissions import manages_users
    _require(manages_users(by), "Only an administrator can enable or disable users.")
    if target.pk == by.pk and not active:
        raise InvalidRequest("You cannot disable yourself.")
    cancelled = 0
    with transaction.atomic():
        User.objects.filter(pk=target.pk).update(is_active=active)
        target.is_active = active
        if not active:
            _delete_sessions_of(target)
            from accounts.tokens import revoke_all
            revoke_all(target, "account disabled")
    if not active:
        from tasks.models import Task
        for task in Task.objects.filter(user=target, status=TaskStatus.QUEUED):
            try:
                cancel_task(task, by)
                cancelled += 1
            except TaskError:
                pass  # started meanwhile
    audit.record(by, "user.enable" if active else "user.disable", target,
                 detail=f"{cancelled} queued task(s) cancelled" if not active else "")
    return cancelled


def _delete_sessions_of(user: User) -> None:
    uid = str(user.pk)
    doomed = [s.pk for s in Session.objects.filter(expire_date__gt=timezone.now())
              if s.get_decoded().get("_auth_user_id") == uid]
    Session.objects.filter(pk__in=doomed).delete()


def create_user(by, *, username: str, email: str = "", first_name: str = "", last_name: str = "",
                role: str = "", password: str | None = None) -> User:
    from accounts.permissions import manages_users
    _require(manages_users(by) or (not role and _administers_any(by)), "You may not create users.")
    validate_username(username)
    if email:
        try:
            validate_email(email)
        except ValidationError:
            raise InvalidRequest(f"{email!r} is not a valid email address.") from None
    if User.objects.filter(username=username).exists():
        raise InvalidRequest(f"The username {username} is taken.")
    user = User(username=username, email=email, first_name=first_name, last_name=last_name, role=role)
    if password:
        from django.contrib.auth.password_validation import validate_password
        try:
            validate_password(password, user)
        except ValidationError as exc:
            raise InvalidRequest(" ".join(exc.messages)) from None
        user.set_password(password)
    else:
        user.set_unusable_password()  # they set one through the link in their welcome email
    user.save()
    audit.record(by, "user.create", user, detail=f"role {role or 'none'}")
    return user


def _administers_any(user) -> bool:
    from accounts.permissions import administered_tenant_ids
    return bool(administered_tenant_ids(user))


# -- tenants and members --------------------------------------------------------
def create_tenant(by, *, slug: str, name: str, description: str = "", **quotas) -> Tenant:
    from accounts.permissions import is_admin
    _require(is_admin(by), "Only an administrator can create tenants.")
    tenant = Tenant(slug=slug, name=name, description=description, **quotas)
    try:
        tenant.full_clean()
    except ValidationError as exc:
        raise InvalidRequest(validators.messages(exc)) from None
    tenant.save()
    audit.record(by, "tenant.create", tenant)
    return tenant


def set_quotas(by, tenant: Tenant, **quotas) -> Tenant:
    from accounts.permissions import is_admin
    _require(is_admin(by), "Only an administrator can change quotas.")
    for key, value in quotas.items():
        if not key.startswith("max_") or not hasattr(tenant, key):
            raise InvalidRequest(f"Unknown quota {key}.")
        if value is not None and (not isinstance(value, int) or value < 0):
            raise InvalidRequest(f"{key} must be a whole number of 0 or more, or empty for no limit.")
        setattr(tenant, key, value)
    tenant.save(update_fields=list(quotas))
    audit.record(by, "tenant.quotas", tenant, detail=", ".join(f"{k}={v}" for k, v in quotas.items()))
    return tenant


def addable_users(by) -> "QuerySet[User]":
    """Existing users `by` may put into a tenant: anyone for an administrator; for a tenant admin,
    only people already in one of the tenants they administer (never another tenant's people,
    nor the panel's administrators)."""
    from accounts.permissions import administered_tenant_ids, manages_users
    if manages_users(by):
        return User.objects.all()
    return User.objects.filter(memberships__tenant_id__in=administered_tenant_ids(by), role="",
                               is_superuser=False).distinct()


def create_member(by, tenant: Tenant, *, username: str, email: str, first_name: str = "", last_name: str = "",
                  role: str = TenantRole.MEMBER) -> tuple[User, bool]:
    """A new account in `tenant`, invited by email to choose a password. Returns (user, mail sent)."""
    from accounts.permissions import is_tenant_admin
    _require(is_tenant_admin(by, tenant), f"You may not manage the members of {tenant.slug}.")
    if role not in TenantRole.values:
        raise InvalidRequest(f"Unknown tenant role {role!r}.")
    if not email:
        raise InvalidRequest("An email address is needed for the invitation.")
    with transaction.atomic():  # no user without the membership
        user = create_user(by, username=username, email=email, first_name=first_name, last_name=last_name)
        Membership.objects.create(tenant=tenant, user=user, role=role)
        audit.record(by, "tenant.member.add", tenant, detail=f"{user.username} as {role} (new account)")
    return user, send_invitation_email(user, tenant, by)


def add_member_by_name(by, tenant: Tenant, username: str, role: str = TenantRole.MEMBER) -> Membership:
    """Add an existing user, named by username. The refusal reads the same whether or not the
    username exists, so the form cannot be used to find out who has an account."""
    user = addable_users(by).filter(username=(username or "").strip()).first()
    if user is None:
        raise InvalidRequest(f"{username.strip()!r} is not among the people you can add; to add someone new, "
                             "create their account below (they get an email to choose a password).")
    return add_member(by, tenant, user, role)


def add_member(by, tenant: Tenant, user: User, role: str = TenantRole.MEMBER) -> Membership:
    from accounts.permissions import is_tenant_admin
    _require(is_tenant_admin(by, tenant), f"You may not manage the members of {tenant.slug}.")
    if role not in TenantRole.values:
        raise InvalidRequest(f"Unknown tenant role {role!r}.")
    if not Membership.objects.filter(tenant=tenant, user=user).exists() and \
            not addable_users(by).filter(pk=user.pk).exists():
        raise InvalidRequest(f"{user.username!r} is not among the people you can add; to add someone new, "
                             "create their account below (they get an email to choose a password).")
    if role != TenantRole.ADMIN:
        _keep_an_admin(tenant, leaving=user)
    membership, _ = Membership.objects.update_or_create(tenant=tenant, user=user, defaults={"role": role})
    audit.record(by, "tenant.member.add", tenant, detail=f"{user.username} as {role}")
    return membership


def remove_member(by, tenant: Tenant, user: User) -> None:
    from accounts.permissions import is_tenant_admin
    _require(is_tenant_admin(by, tenant), f"You may not manage the members of {tenant.slug}.")
    if tenant.containers.filter(owner=user).exists():
        raise InvalidRequest(f"{user.username} still has containers in {tenant.slug}; give them to someone "
                             "else or destroy them first.")
    _keep_an_admin(tenant, leaving=user)
    Membership.objects.filter(tenant=tenant, user=user).delete()
    audit.record(by, "tenant.member.remove", tenant, detail=user.username)


def _keep_an_admin(tenant: Tenant, leaving: User) -> None:
    """A tenant must keep at least one tenant admin once it has one."""
    admins = Membership.objects.filter(tenant=tenant, role=TenantRole.ADMIN)
    if admins.filter(user=leaving).exists() and admins.count() == 1:
        raise InvalidRequest(f"{leaving.username} is the last tenant admin of {tenant.slug}; make someone else "
                             "tenant admin first.")


# -- plans ----------------------------------------------------------------------
def save_plan(by, plan: Plan) -> Plan:
    from accounts.permissions import is_admin
    _require(is_admin(by), "Only an administrator can define plans.")
    try:
        plan.full_clean()
    except ValidationError as exc:
        raise InvalidRequest(validators.messages(exc)) from None
    plan.save()
    audit.record(by, "plan.save", plan, detail=str(plan.limits()))
    return plan


def plans_for(tenant: Tenant | None):
    """The plans a tenant may pick from: those offered to it, and those offered to all."""
    from django.db.models import Count, Q
    qs = Plan.objects.annotate(n_tenants=Count("tenants"))
    if tenant is None:
        return qs
    return qs.filter(Q(n_tenants=0) | Q(tenants=tenant)).distinct()


# -- classes --------------------------------------------------------------------
def create_class(by, *, tenant: Tenant, slug: str, name: str, host, ostemplate: str, plan: Plan,
                 expires_at: datetime | None = None, grace_days: int = 14,
                 backup_before_destroy: bool = True) -> StudentClass:
    from accounts.permissions import is_tenant_admin
    _require(is_tenant_admin(by, tenant), f"You may not create classes in {tenant.slug}.")
    if not plans_for(tenant).filter(pk=plan.pk).exists():
        raise InvalidRequest(f"Plan {plan.name} is not offered to {tenant.slug}.")
    cls = StudentClass(tenant=tenant, slug=slug, name=name, host=host, ostemplate=ostemplate, plan=plan,
                       expires_at=expires_at, grace_days=grace_days, backup_before_destroy=backup_before_destroy)
    try:
        cls.full_clean()
    except ValidationError as exc:
        raise InvalidRequest(validators.messages(exc)) from None
    from containers.models import OSTemplate
    if not OSTemplate.objects.filter(host=host, name=ostemplate).exists():
        raise InvalidRequest(f"OS template {ostemplate!r} is not on host {host.name}.")
    cls.save()
    audit.record(by, "class.create", cls, tenant=tenant)
    return cls


@dataclass
class StudentRow:
    line: int
    username: str
    email: str
    first_name: str = ""
    last_name: str = ""
    errors: list[str] = field(default_factory=list)


class ImportRefused(InvalidRequest):
    """Some rows are wrong: nothing was created. `rows` carries each row's errors."""

    def __init__(self, rows: list[StudentRow], summary: str):
        self.rows = rows
        super().__init__(summary)


MAX_STUDENTS = 500


def parse_students_csv(text: str) -> list[StudentRow]:
    """CSV with columns username, email, optional name (a header row is allowed)."""
    rows = []
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    for line_no, cells in enumerate(reader, start=1):
        cells = [c.strip() for c in cells]
        if not any(cells):
            continue
        if line_no == 1 and cells[0].lower() == "username":
            continue
        name = cells[2] if len(cells) > 2 else ""
        first, _, last = name.partition(" ")
        row = StudentRow(line_no, cells[0].lower() if cells else "", cells[1] if len(cells) > 1 else "",
                         first[:150], last[:150])
        if len(cells) > 3:
            row.errors.append(f"{len(cells)} columns; expected username, email and an optional name")
        rows.append(row)
    return rows


def student_hostname(cls: StudentClass, username: str) -> str:
    return f"{re.sub(r'[^a-z0-9-]+', '-', username).strip('-') or 'student'}.{cls.slug}"


def _validate_rows(rows: list[StudentRow], cls: StudentClass) -> None:
    from containers.models import Container
    from panel.validators import validate_hostname, validate_name_alias
    seen: dict[str, int] = {}
    for row in rows:
        try:
            validate_username(row.username)
        except InvalidRequest as exc:
            row.errors.append(str(exc))
        if not row.email:
            row.errors.append("the email is missing")
        else:
            try:
                validate_email(row.email)
            except ValidationError:
                row.errors.append(f"{row.email!r} is not a valid email address")
        if row.username in seen:
            row.errors.append(f"{row.username} is already on line {seen[row.username]}")
        seen.setdefault(row.username, row.line)
        if User.objects.filter(username=row.username).exists():
            row.errors.append(f"the username {row.username} is taken")
        name = container_name(cls, row.username)
        try:
            validate_name_alias(name)
            validate_hostname(student_hostname(cls, row.username))
        except ValidationError as exc:
            row.errors.append(f"the container name or hostname would be invalid: {' '.join(exc.messages)}")
        if Container.objects.filter(name=name).exists():
            row.errors.append(f"a container named {name} exists")


def container_name(cls: StudentClass, username: str) -> str:
    return f"{cls.slug}-{username}"  # at most 40 + 1 + 32 characters: checked per row


def import_students(by, cls: StudentClass, csv_text: str, start: bool = False, override_capacity: bool = False) -> list:
    """Create a user, a membership and a container for each row; all or nothing.
    `override_capacity` (administrators): place them even past the host's promise policy.

    Every row is checked first; if any row is wrong nothing is created and
    ImportRefused lists each row's errors. Welcome emails go out after commit.
    """
    from accounts.permissions import is_tenant_admin
    from containers.services import CAPACITY_LIMITS, check_capacity, check_override, create_container, next_free_ctid
    _require(is_tenant_admin(by, cls.tenant), f"You may not add students to {cls.slug}.")
    check_override(by, override_capacity)
    rows = parse_students_csv(csv_text)
    if not rows:
        raise InvalidRequest("The file has no students in it.")
    if len(rows) > MAX_STUDENTS:
        raise InvalidRequest(f"At most {MAX_STUDENTS} students at a time.")
    _validate_rows(rows, cls)
    bad = [r for r in rows if r.errors]
    if bad:
        audit.record(by, "class.import", cls, "refused", f"{len(bad)} of {len(rows)} rows wrong", tenant=cls.tenant)
        raise ImportRefused(rows, f"{len(bad)} of {len(rows)} rows are wrong; nothing was imported.")
    created = []
    try:
        with transaction.atomic():
            check_quota(cls.tenant, containers=len(rows), **{k: v * len(rows) for k, v in cls.plan.limits().items()})
            if not override_capacity:
                # The whole class against the host's promise at once: the refusal names the import and
                # the room all its containers need, not "this create" of whichever row ran out. (With an
                # override each row's create records its own override in the audit log.)
                limits = cls.plan.limits()
                check_capacity(cls.host, by, action="class import", adding=f"the class's {len(rows)} new ones",
                               **{k: limits[k] * len(rows) for k in CAPACITY_LIMITS if k in limits})
            ctid = next_free_ctid()
            for row in rows:
                student = User.objects.create(username=row.username, email=row.email,
                                              first_name=row.first_name, last_name=row.last_name)
                student.set_unusable_password()
                student.save(update_fields=["password"])
                Membership.objects.create(tenant=cls.tenant, user=student, role=TenantRole.MEMBER)
                task = create_container(
                    user=by, ctid=ctid, ostemplate=cls.ostemplate, hostname=student_hostname(cls, row.username),
                    host=cls.host, name=container_name(cls, row.username), tenant=cls.tenant, plan=cls.plan,
                    owner=student, student_class=cls, expires_at=cls.expires_at, start=start,
                    description=f"{cls.name}: {row.first_name} {row.last_name}".strip(),
                    override_capacity=override_capacity)
                created.append((student, task))
                ctid += 1
                transaction.on_commit(lambda s=student, c=cls: send_welcome_email(s, c))
    except TaskError as exc:
        audit.record(by, "class.import", cls, "refused", str(exc), tenant=cls.tenant)
        raise
    audit.record(by, "class.import", cls, detail=f"{len(created)} students", tenant=cls.tenant)
    return created


def send_welcome_email(student: User, cls: StudentClass) -> None:
    from django.conf import settings
    from django.core.mail import send_mail

    from accounts.views import password_setup_link
    link = password_setup_link(student)
    body = (f"Hello {student.first_name or student.username},\n\n"
            f"you have a container for {cls.name} on vzpanel.\n\n"
            f"  Panel:     {settings.PANEL_URL}/\n"
            f"  Username:  {student.username}\n"
            f"  Container: {container_name(cls, student.username)}\n\n"
            f"Choose your password here (the link works once):\n  {link}\n")
    if cls.expires_at:
        body += f"\nThe container is available until {timezone.localtime(cls.expires_at):%Y-%m-%d %H:%M}.\n"
    try:
        send_mail(f"Your container for {cls.name}", body, None, [student.email])
        audit.record(None, "class.welcome", cls, detail=f"sent to {student.username}", address="panel")
    except Exception as exc:  # the import stands; the admin can resend from the class page
        audit.record(None, "class.welcome", cls, "failed", f"{student.username}: {exc}", address="panel")


def send_invitation_email(user: User, tenant: Tenant, by) -> bool:
    """The link with which a member a tenant admin created chooses a password. Returns whether it went."""
    from django.conf import settings
    from django.core.mail import send_mail

    from accounts.views import password_setup_link
    body = (f"Hello {user.first_name or user.username},\n\n"
            f"{by.get_full_name() or by.username} added you to {tenant.name} on vzpanel.\n\n"
            f"  Panel:     {settings.PANEL_URL}/\n"
            f"  Username:  {user.username}\n\n"
            f"Choose your password here (the link works once):\n  {password_setup_link(user)}\n")
    try:
        send_mail(f"Your account on vzpanel for {tenant.name}", body, None, [user.email])
    except Exception as exc:
        audit.record(by, "tenant.member.invite", tenant, "failed", f"{user.username}: {exc}")
        return False
    audit.record(by, "tenant.member.invite", tenant, detail=f"sent to {user.username}")
    return True


BULK_ACTIONS = ("start", "stop", "reset", "destroy", "extend")


def class_bulk_action(by, cls: StudentClass, action: str, *, confirm: str = "",
                      expires_at: datetime | None = None) -> list[tuple[object, str]]:
    """Run one action on every container of the class; returns (container, outcome) pairs."""
    from accounts.permissions import is_tenant_admin
    from containers import services as cs
    _require(is_tenant_admin(by, cls.tenant), f"You may not manage class {cls.slug}.")
    if action not in BULK_ACTIONS:
        raise InvalidRequest(f"Unknown action {action!r}; one of {', '.join(BULK_ACTIONS)}.")
    if action in ("reset", "destroy") and confirm != cls.slug:
        raise InvalidRequest(f"To {action} every container of {cls.slug}, confirm by typing {cls.slug}.")
    if action == "extend":
        if expires_at is None or expires_at <= timezone.now():
            raise InvalidRequest("Give a new expiry date in the future.")
        with transaction.atomic():
            StudentClass.objects.filter(pk=cls.pk).update(expires_at=expires_at)
            n = cls.containers.update(expires_at=expires_at)
        cls.expires_at = expires_at
        audit.record(by, "class.extend", cls, detail=f"to {expires_at:%Y-%m-%d %H:%M} ({n} containers)")
        return [(ct, "extended") for ct in cls.containers.all()]
    outcomes = []
    for ct in cls.containers.select_related("host").order_by("ctid"):
        try:
            if action == "start":
                task = cs.start_container(ct, by)
            elif action == "stop":
                task = cs.stop_container(ct, by)
            elif action == "reset":
                task = cs.reset_container(ct, by, ct.ctid)
            else:
                task = cs.destroy_container(ct, by, ct.ctid)
            outcomes.append((ct, f"task #{task.pk} queued"))
        except TaskError as exc:
            outcomes.append((ct, str(exc)))
    audit.record(by, f"class.{action}", cls, detail=f"{len(outcomes)} containers")
    return outcomes
