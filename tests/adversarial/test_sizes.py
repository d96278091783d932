"""Sizes as users and old archives spell them, and as a fuzzer does."""
import subprocess
import sys

import pytest

from containers.engine.ctconf import parse_vps_conf
from containers.engine.units import BadAmount, parse_amount, parse_mb
from tests.conftest import BASE_DIR, subprocess_env


@pytest.mark.parametrize("text,mb", [("512M", 512), ("2G", 2048), ("2.5G", 2560), ("1048576K", 1024), ("64", 64),
                                     ("1T", 1 << 20), ("0.5g", 512)])
def test_sizes_vzctl_takes(text, mb):
    assert parse_mb(text) == mb


@pytest.mark.parametrize("text", ["inf", "nan", "infM", "1e400G", " 64M", "64M ", "-1G", "+1G", "0x10", "1.5",
                                  "١٢M", "²G", "1,5G", "64MB", "", "1.1234567G", "G"])
def test_sizes_vzctl_refuses(text):
    with pytest.raises(BadAmount):
        parse_amount(text, 1 << 20)


def test_unlimited():
    assert parse_amount("unlimited") is None and parse_amount("9223372036854775807") is None


def test_vswap_config_keeps_its_fractional_diskspace():
    conf = parse_vps_conf('DISKSPACE="2G:2.2G"\nPHYSPAGES="0:262144"\nSWAPPAGES="0:512M"\n')
    assert (conf["disk_soft_mb"], conf["disk_mb"], conf["ram_mb"], conf["swap_mb"]) == (2048, 2252, 1024, 512)


@pytest.mark.parametrize("value", ["inf", "1e400G", "infM", " 64M", "nan"])
def test_vzctl_set_answers_without_a_traceback(admin_user, host, value):
    res = subprocess.run([sys.executable, str(BASE_DIR / "manage.py"), "vzctl", "set", "101", "--ram", value],
                         env=subprocess_env(), cwd=BASE_DIR, capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert "is not a size" in res.stderr or "give a size" in res.stderr
