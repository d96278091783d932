"""OS template operations (build, download, upload, from a container, copy, delete), called by
the views and the API alike. Templates are shared by a host's containers, so only administrators
and operators change the catalogue; the work runs on the host's agent."""
from __future__ import annotations

import re
from urllib.parse import urlparse

from django.conf import settings
from django.db import transaction

from accounts.audit import audited
from hosts.models import Host
from tasks.choices import TaskType
from tasks.models import Task
from tasks.services import submit_task

from .choices import Action
from .engine.templates import NAME_RE, SUFFIXES, template_name
from .models import Container, OSTemplate
from .services import InvalidRequest, NotAllowed, _submit_locked

DISTRIBUTIONS = ("debian", "ubuntu")
RELEASE_RE = re.compile(r"^[a-z][a-z0-9-]{1,30}\Z")
ARCH_RE = re.compile(r"^[a-z0-9_]{2,16}\Z")


def _require_admin(user) -> None:
    from accounts.permissions import manages_hosts
    if user is not None and not manages_hosts(user):
        raise NotAllowed("Only administrators and operators change the OS template catalogue.")


def _check_name(host: Host, name: str) -> str:
    if not NAME_RE.match(name or ""):
        raise InvalidRequest(f"{name!r} is not a template name: letters, digits, '.', '_', '+' and '-', "
                             "starting with a letter or digit.")
    if OSTemplate.objects.filter(host=host, name=name).exists():
        raise InvalidRequest(f"Host {host.name} already has a template {name}; delete it first or pick another name.")
    return name


def _submit(host, user, task_type, params, container=None) -> Task:
    with transaction.atomic():
        return submit_task(type=task_type, host=host, user=user, container=container, params=params)


@audited("template.build", target="host")
def build_template(user, host: Host, *, distribution: str = "debian", release: str = "bookworm",
                   architecture: str = "amd64", mirror: str | None = None, name: str | None = None) -> Task:
    """debootstrap a Debian or Ubuntu template (from the host's own Debian mirror unless told)."""
    _require_admin(user)
    if distribution not in DISTRIBUTIONS:
        raise InvalidRequest(f"Builds are for {' and '.join(DISTRIBUTIONS)}, not {distribution!r}.")
    if not RELEASE_RE.match(release or ""):
        raise InvalidRequest(f"{release!r} is not a release name such as bookworm or noble.")
    if not ARCH_RE.match(architecture or ""):
        raise InvalidRequest(f"{architecture!r} is not an architecture such as amd64.")
    if mirror and urlparse(mirror).scheme not in ("http", "https"):
        raise InvalidRequest("The mirror must be an http:// or https:// address.")
    if distribution == "ubuntu" and not mirror:
        mirror = settings.UBUNTU_MIRROR
    name = _check_name(host, name or f"{distribution}-{release}-{architecture}")
    return _submit(host, user, TaskType.TPL_BUILD, {"distribution": distribution, "release": release,
                                                    "architecture": architecture, "mirror": mirror, "name": name})


@audited("template.download", target="host")
def download_template(user, host: Host, *, url: str, sha256: str | None = None, name: str | None = None) -> Task:
    """A template tarball from a URL, checked against `sha256` when given."""
    _require_admin(user)
    parsed = urlparse(url or "")
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise InvalidRequest("Give an http:// or https:// address of a template tarball.")
    filename = parsed.path.rsplit("/", 1)[-1]
    suffix = next((s for s in SUFFIXES if filename.endswith(s)), None)
    if suffix is None:
        raise InvalidRequest(f"The address must end in a tarball ({', '.join(SUFFIXES)}).")
    name = _check_name(host, name or template_name(filename) or "")
    if sha256 and not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
        raise InvalidRequest("The SHA-256 is 64 hexadecimal digits.")
    return _submit(host, user, TaskType.TPL_DOWNLOAD, {"url": url, "sha256": (sha256 or "").lower() or None,
                                                       "name": name, "suffix": suffix})


@audited("template.download", target="host")
def download_from_index(user, host: Host, *, index_url: str, distribution: str, release: str,
                        architecture: str = "amd64", variant: str = "default", name: str | None = None) -> Task:
    """An image from an LXC-images-style server, its checksum and (with a keyring) signature checked."""
    _require_admin(user)
    if urlparse(index_url or "").scheme not in ("http", "https"):
        raise InvalidRequest("The image server must be an http:// or https:// address.")
    for label, value in (("distribution", distribution), ("release", release), ("variant", variant)):
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,40}", value or ""):
            raise InvalidRequest(f"{value!r} is not a {label}.")
    if not ARCH_RE.match(architecture or ""):
        raise InvalidRequest(f"{architecture!r} is not an architecture.")
    name = _check_name(host, name or f"{distribution}-{release}-{architecture}")
    return _submit(host, user, TaskType.TPL_DOWNLOAD, {
        "index_url": index_url, "distribution": distribution, "release": release, "architecture": architecture,
        "variant": variant, "name": name, "keyring": settings.TEMPLATE_KEYRING or None})


@audited("template.upload", target="host")
def import_uploaded_template(user, host: Host, path: str, name: str) -> Task:
    """A tarball the web process streamed to disk: the agent checks it and puts it in the cache."""
    _require_admin(user)
    _check_name(host, name)
    return _submit(host, user, TaskType.TPL_IMPORT, {"path": path, "name": name})


@audited("template.from_container")
def template_from_container(ct: Container, user, name: str) -> Task:
    """Pack a stopped container as a template, its identity left out (hostname, keys, machine-id, logs)."""
    _require_admin(user)
    _check_name(ct.host, name)
    return _submit_locked(ct, Action.DESTROY, TaskType.TPL_FROM_CT, user, params={"name": name})


@audited("template.copy", target="template")
def copy_template(user, template: OSTemplate, target: Host) -> Task:
    _require_admin(user)
    if target.pk == template.host_id:
        raise InvalidRequest(f"{template.name} is already on {target.name}.")
    _check_name(target, template.name)
    if target.ssh_address:
        # Another machine: the source's agent sends it over SSH, the target's agent checks it in.
        return _submit(template.host, user, TaskType.TPL_COPY, {
            "push": True, "target_host_id": target.pk, "target": target.name,
            "name": template.name, "filename": template.filename, "sha256": template.sha256})
    return _submit(target, user, TaskType.TPL_COPY, {
        "source_host": template.host.name, "source_path": f"{template.host.template_dir.rstrip('/')}/{template.filename}",
        "name": template.name, "filename": template.filename, "sha256": template.sha256})


@audited("template.delete", target="template")
def delete_template(user, template: OSTemplate) -> Task:
    _require_admin(user)
    return _submit(template.host, user, TaskType.TPL_DELETE, {"filename": template.filename, "name": template.name})
