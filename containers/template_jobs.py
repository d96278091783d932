"""Agent side of OS templates: build with debootstrap, download, import an upload, pack a container,
copy and delete. Every result lands in the cache only when complete and checked."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from tasks.choices import TaskType
from tasks.registry import handler
from tasks.runner import TaskFailed

from .engine import osbuild
from .engine.safefs import root_only_dir
from .engine.templates import remove_template, sha256_of, write_meta
from .jobs import live_view, lxc_for, needs_rootfs


def _cache(task) -> Path:
    cache = root_only_dir(task.host.template_dir, "template directory")
    cache.mkdir(parents=True, exist_ok=True)
    return cache


def _sync(task) -> None:
    from hosts.agent import Agent
    Agent(task.host).sync_templates()


def _checked(path: Path, log):
    """Refuse (and delete) what is not a safe root filesystem."""
    from .engine.fetch import FetchError, check_rootfs_tarball
    from .engine.vzdump import ArchiveError
    try:
        check = check_rootfs_tarball(path)
    except (FetchError, ArchiveError) as exc:
        path.unlink(missing_ok=True)
        raise TaskFailed(f"{exc}; the file was deleted") from None
    log(f"Checked: {check.members} members, init {check.init}")
    return check


@handler(TaskType.TPL_BUILD)
def build(task, log):
    p = task.params
    cache = _cache(task)
    mirror = p.get("mirror") or osbuild.host_debian_mirror()
    target = cache / f"{p['name']}.tar.zst"
    with tempfile.TemporaryDirectory(prefix=".vzpanel-build-", dir=cache) as work:
        rootfs = Path(work) / "rootfs"
        try:
            osbuild.debootstrap(rootfs, p["release"], mirror, p.get("architecture"), log=log)
            task.set_progress(70)
            osbuild.prepare_for_container(rootfs, log)
            release = osbuild.os_release(rootfs, log)
            osbuild.pack_rootfs(rootfs, target, log=log)
        except osbuild.BuildError as exc:
            raise TaskFailed(str(exc)) from None
    write_meta(cache, target.name, distribution=p["distribution"], version=release.get("VERSION_ID", p["release"]),
               architecture=p.get("architecture"), source=f"debootstrap {p['release']} from {mirror}")
    _sync(task)
    return {"template": p["name"], "sha256": sha256_of(target), "size": target.stat().st_size}


@handler(TaskType.TPL_DOWNLOAD)
def download(task, log):
    from .engine import fetch
    p = task.params
    cache = _cache(task)
    try:
        if p.get("index_url"):
            path, digest = fetch.fetch_from_index(
                p["index_url"], cache, p["name"], p["distribution"], p["release"], p["architecture"],
                p.get("variant", "default"), Path(p["keyring"]) if p.get("keyring") else None, log=log)
            source = f"{p['index_url']} ({p['distribution']} {p['release']} {p['architecture']})"
        else:
            path = cache / f"{p['name']}{p['suffix']}"
            log(f"Downloading {p['url']}")
            digest = fetch.download(p["url"], path, expected_sha256=p.get("sha256"))
            source = p["url"]
    except fetch.FetchError as exc:
        raise TaskFailed(str(exc)) from None
    log(f"SHA-256 {digest}" + (" (matches)" if p.get("sha256") else ""))
    check = _checked(path, log)
    write_meta(cache, path.name, distribution=p.get("distribution", ""), version=p.get("release", ""),
               architecture=p.get("architecture", ""), source=source)
    _sync(task)
    return {"template": p["name"], "sha256": digest, "members": check.members}


@handler(TaskType.TPL_IMPORT)
def import_upload(task, log):
    """Check an uploaded tarball and put it in the cache. Only a file directly in the uploads
    directory is taken, opened once without following a link; every check, the deletion of a
    refused one and the move into the cache go through that open file."""
    from django.conf import settings

    from .engine.fetch import FetchError, check_rootfs_tarball
    from .engine.vzdump import ArchiveError, entry_of, open_archive, place_open_file, unlink_if_same
    p = task.params
    try:
        source = entry_of(settings.UPLOAD_DIR, p["path"])
        fd = open_archive(source)
    except ArchiveError:
        raise TaskFailed(f"the upload {p['path']} is gone or not an upload") from None
    try:
        try:
            check = check_rootfs_tarball(fd)
        except (FetchError, ArchiveError) as exc:
            unlink_if_same(source, fd)
            raise TaskFailed(f"{exc}; the file was deleted") from None
        log(f"Checked: {check.members} members, init {check.init}")
        suffix = next(s for s in (".tar.gz", ".tar.xz", ".tar.zst", ".tgz", ".tar") if source.name.endswith(s))
        target = _cache(task) / f"{p['name']}{suffix}"
        if os.path.lexists(target):
            unlink_if_same(source, fd)
            raise TaskFailed(f"{target} exists already")
        os.fchown(fd, 0, 0)  # the web user's file until now: root's from here
        os.fchmod(fd, 0o644)
        place_open_file(fd, target)
        unlink_if_same(source, fd)
    finally:
        os.close(fd)
    write_meta(target.parent, target.name, source="upload")
    _sync(task)
    return {"template": p["name"], "sha256": sha256_of(target)}


@handler(TaskType.TPL_FROM_CT)
@needs_rootfs
def from_container(task, log):
    ct = task.container
    if ct is None:
        raise TaskFailed(f"container {task.ctid} no longer exists")
    lxc = lxc_for(task.host)
    if lxc.state(ct.ctid) not in ("STOPPED",):
        raise TaskFailed(f"container {ct.ctid} must be stopped to become a template")
    target = _cache(task) / f"{task.params['name']}.tar.zst"
    # Stopped, but still the tenant's tree: read only through a view on which no link is followed.
    with live_view(lxc, ct.ctid) as view:
        release = osbuild.os_release(view, log)
        try:
            osbuild.pack_rootfs(view, target, strip_identity=True, log=log)
        except osbuild.BuildError as exc:
            raise TaskFailed(str(exc)) from None
    write_meta(target.parent, target.name, distribution=release.get("ID", ""), version=release.get("VERSION_ID", ""),
               source=f"container {ct.ctid} ({ct.ostemplate})")
    log("Left out: hostname, machine-id, SSH host keys, logs, shell history, authorized keys, temporary files")
    _sync(task)
    return {"template": task.params["name"], "sha256": sha256_of(target)}


@handler(TaskType.TPL_COPY)
def copy(task, log):
    p = task.params
    if p.get("push"):
        return _push(task, log)
    source = Path(p["source_path"])
    if not source.is_file():
        raise TaskFailed(f"{source} (host {p['source_host']}) cannot be read from host {task.host.name}: "
                         "templates are copied only between hosts on one machine; on another machine, "
                         "download or build the template there")
    target = _cache(task) / p["filename"]
    partial = target.with_name(target.name + ".partial")
    shutil.copyfile(source, partial)
    if sha256_of(partial) != p["sha256"]:
        partial.unlink(missing_ok=True)
        raise TaskFailed("the copy's checksum differs from the source's; nothing was kept")
    partial.rename(target)
    from .engine.templates import read_meta
    write_meta(target.parent, target.name, **{**read_meta(source.parent, source.name), "source": f"copied from {p['source_host']}"})
    _sync(task)
    log(f"Copied {p['filename']} from {p['source_host']}")
    return {"template": p["name"]}


def _push(task, log):
    """On the source host: send the template to another machine's incoming area, then have that
    host's agent check its checksum and tarball and put it in its cache."""
    from hosts.models import Host
    from .migration import remote_step, transport_between
    p = task.params
    target = Host.objects.get(pk=p["target_host_id"])
    source = _cache(task) / p["filename"]
    if not source.is_file():
        raise TaskFailed(f"{source} is not in the template cache of {task.host.name}")
    transport = transport_between(task.host, target, task.pk)
    incoming = f".vzpanel-incoming-0-{task.pk}"
    log(f"Sending {p['filename']} to {transport.description}")
    transport.open()
    try:
        seconds = transport.rsync(source, incoming, log=log)
    finally:
        transport.close()
    log(f"Sent in {seconds:.1f} s; {target.name} checks it")
    from .engine.templates import read_meta
    remote_step(task, target, TaskType.TPL_RECEIVE, "template_in", dir=incoming, filename=p["filename"],
                sha256=p["sha256"], name=p["name"], meta=read_meta(source.parent, source.name),
                source_host=task.host.name)
    log(f"Copied {p['filename']} to {target.name}")
    return {"template": p["name"], "target": target.name}


@handler(TaskType.TPL_RECEIVE)
def receive(task, log):
    """On the target host: a template another host's agent sent into the incoming area."""
    import re
    p = task.params
    if not re.fullmatch(r"\.vzpanel-incoming-0-\d+", p["dir"]) or "/" in p["filename"]:
        raise TaskFailed("bad incoming template path")
    incoming = Path(task.host.lxcpath) / p["dir"]
    try:
        sent = incoming / p["filename"]
        if not sent.is_file() or sha256_of(sent) != p["sha256"]:
            raise TaskFailed("the copy's checksum differs from the source's; nothing was kept")
        _checked(sent, log)
        target = _cache(task) / p["filename"]
        partial = target.with_name(target.name + ".partial")
        shutil.copyfile(sent, partial)
        partial.rename(target)
        write_meta(target.parent, target.name, **{**(p.get("meta") or {}), "source": f"copied from {p['source_host']}"})
    finally:
        shutil.rmtree(incoming, ignore_errors=True)
    _sync(task)
    log(f"{p['filename']} is in the template cache")
    return {"template": p["name"]}


@handler(TaskType.TPL_DELETE)
def delete(task, log):
    remove_template(_cache(task), task.params["filename"])
    _sync(task)
    log(f"Deleted {task.params['filename']}")
    return {"deleted": task.params["name"]}
