"""The smallest disk quota (issue 22, density): every refusal says why it is 300 MiB (XFS makes no
smaller filesystem) and what the smallest disk really costs, whichever way the size came in."""
import subprocess
import tempfile

import pytest

from containers.api.serializers import ContainerCreateSerializer, ContainerUpdateSerializer
from containers.engine.diskimage import DiskImage, DiskImageError
from containers.engine.units import MIN_DISK_MB, XFS_LOG_MB
from containers.forms import LimitFields
from containers.services import InvalidRequest, validate_limits

REASON = ("XFS makes none smaller than 300 MiB", "about 66 MiB of real disk", "a loop device, a mount")


def says_why(text: str) -> bool:
    return "at least 300 MiB" in text and all(part in text for part in REASON)


@pytest.mark.parametrize("value", [299, "1", 0])
def test_the_service_refusal_says_why_and_what_it_costs(value):
    with pytest.raises(InvalidRequest) as refused:
        validate_limits({"disk_mb": value})
    assert says_why(str(refused.value))
    assert validate_limits({"disk_mb": MIN_DISK_MB}) == {"disk_mb": 300}
    with pytest.raises(InvalidRequest, match="between 300 and"):  # too big keeps its own message
        validate_limits({"disk_mb": 1 << 27})


def test_the_form_and_the_api_say_the_same(db):
    form = LimitFields(data={"disk_mb": "299"})  # the create and settings forms' disk field
    assert not form.is_valid() and says_why(" ".join(form.errors["disk_mb"]))
    for serializer in (ContainerCreateSerializer, ContainerUpdateSerializer):
        data = serializer(data={"disk_mb": 299})
        assert not data.is_valid() and says_why(" ".join(map(str, data.errors["disk_mb"])))


def test_the_engine_refuses_before_it_writes_anything(tmp_path):
    with pytest.raises(DiskImageError) as refused:
        DiskImage(tmp_path / "root.img", tmp_path / "rootfs").create(MIN_DISK_MB - 1)
    assert says_why(str(refused.value)) and not (tmp_path / "root.img").exists()


def test_the_minimum_is_xfs_own():
    """mkfs.xfs itself refuses a filesystem under 300 MiB, and takes one of exactly 300 MiB."""
    for size_mb, ok in ((MIN_DISK_MB - 1, False), (MIN_DISK_MB, True)):
        with tempfile.NamedTemporaryFile() as image:
            image.truncate(size_mb << 20)
            made = subprocess.run(["mkfs.xfs", "-q", "-f", image.name], capture_output=True, text=True)
            assert (made.returncode == 0) == ok, made.stderr
            if ok:  # the log XFS writes out in full: the real disk the smallest quota costs at once
                allocated = subprocess.run(["du", "-B1M", image.name], capture_output=True, text=True).stdout
                assert int(allocated.split()[0]) >= XFS_LOG_MB
