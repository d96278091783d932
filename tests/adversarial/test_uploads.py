"""Uploads as a tenant with little backup space left, or none: refused as the bytes arrive, nothing
left on the disk, no 500. Archives are readable by root and the panel only."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from containers.engine.vzdump import ArchiveOptions, create_archive
from tasks.models import Task

NAME = "vzdump-lxc-501-2025_01_02-03_04_05.tar.zst"


@pytest.fixture
def uploads(settings, tmp_path):
    settings.UPLOAD_DIR = str(tmp_path / "dump" / "uploads")
    return Path(settings.UPLOAD_DIR)


def leftovers(uploads: Path) -> list[str]:
    return sorted(p.name for p in uploads.iterdir()) if uploads.exists() else []


def post(client, data: bytes, tenant="acme"):
    return client.post("/backups/upload/", {"archive": SimpleUploadedFile(NAME, data), "host": "vzt-host",
                                            "tenant": tenant}, follow=True)


def test_an_upload_past_the_backup_space_left_stops_as_it_arrives(client, people, host, acme, uploads):
    acme.max_backup_mb = 1
    acme.save()
    client.force_login(people["tadmin"])
    response = post(client, os.urandom(3 << 20))
    assert "larger than the 1.0 MiB you may upload" in response.content.decode()
    assert leftovers(uploads) == [] and not Task.objects.exists()


def test_an_upload_past_the_backup_count_is_refused_and_removed_not_a_500(client, people, host, acme, uploads):
    acme.max_backups = 0
    acme.save()
    client.force_login(people["tadmin"])
    response = post(client, b"x" * 1000)
    assert response.status_code == 409  # the upload form again, the quota's refusal at its top
    assert "Quota exceeded for tenant acme: backups" in response.content.decode()
    assert leftovers(uploads) == [] and not Task.objects.exists()


def test_uploads_land_on_the_backup_storage_not_next_to_the_database(client, admin_user, host, uploads, settings):
    client.force_login(admin_user)
    response = post(client, b"y" * 5000, tenant="")
    assert response.status_code == 200
    assert leftovers(uploads) == [NAME]  # only the named file: the temporary one went with the request
    assert not (Path(settings.VAR_DIR) / "uploads" / NAME).exists()
    assert Task.objects.get(type="backup.import").params["path"] == str(uploads / NAME)


def test_archives_their_checksums_and_dump_directory_are_private(tmp_path):
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "secret").write_text("tenant data")
    dump = tmp_path / "dump"
    os.umask(0o022)
    archive = create_archive(root, "hostname: x\n", dump, 501, ArchiveOptions(compress="none", gid=os.getgid()))
    for path in (archive.path, archive.path.with_name(archive.path.name + ".sha256")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, path
    assert stat.S_IMODE(dump.stat().st_mode) == 0o750
