"""Every unit OpenVZ's parser took, against what OpenVZ meant (vzctl(8), "Resource limits"): the
number vzctl stored, in the parameter's own unit, read here by the archive import (vps.conf) and by
`vzctl set`, which must land on the same MiB, or be refused where vzctl refused."""
import pytest
from django.core.management.base import CommandError

from containers.engine.ctconf import parse_vps_conf
from containers.engine.units import BadAmount, parse_amount, parse_count
from containers.management.commands.vzctl import Command as Vzctl

PAGE, BLOCK, MIB = 4096, 1024, 1 << 20
LONG_MAX = 9223372036854775807

# (text, what vzctl stored in pages): vzctl's parse_ub with the page size as divisor.
PAGES = [
    ("262144", 262144),            # a bare number is pages
    ("1G", 262144), ("1g", 262144),
    ("2.5G", 655360),              # fractions with a suffix (vzctl 4: strtold, rounded down)
    ("1.5M", 384),
    ("1048576K", 262144), ("1048576k", 262144),
    ("512M", 131072),
    ("1T", 268435456),
    ("262144P", 262144), ("262144p", 262144),  # P is vzctl's memory page, not peta
    ("1073741824B", 262144), ("1073741824b", 262144),
    ("unlimited", LONG_MAX), (str(LONG_MAX), LONG_MAX),
]
# (text, what vzctl stored in 1 KiB blocks): parse_dq with 1024 as divisor.
BLOCKS = [
    ("1048576", 1048576),          # a bare number is 1 KiB blocks
    ("2G", 2097152), ("2.2G", 2306867),  # 2.2 GiB = 2306867.2 blocks, rounded down
    ("1.5M", 1536), ("10G", 10485760), ("1T", 1073741824),
    ("262144P", 1048576),          # pages of 4 KiB
    ("2147483648B", 2097152), ("2097152K", 2097152),
]
# (text, count) for the num* parameters and diskinodes: no suffix at all.
COUNTS = [("240", 240), ("200000", 200000), ("unlimited", None)]
REFUSED_COUNTS = ["240K", "1M", "1.5", "2G"]


def mib(units: int, unit: int) -> int:
    """What the panel keeps: whole MiB, rounded down, at least 1 for anything above zero."""
    return max(1, units * unit // MIB) if units else 0


def vzctl_set(*args):
    parser = Vzctl().create_parser("manage.py", "vzctl")
    return vars(parser.parse_args(["set", "101", *args]))


@pytest.mark.parametrize("text,pages", PAGES)
def test_page_based_values_mean_what_vzctl_stored(text, pages):
    expected = None if pages == LONG_MAX else pages * PAGE
    amount = parse_amount(text, PAGE)
    assert (amount if amount is None else amount // PAGE * PAGE) == expected  # vzctl's whole pages
    conf = parse_vps_conf(f'PHYSPAGES="0:{text}"\nSWAPPAGES="0:{text}"\n')
    if expected is None:  # unlimited memory is left to the panel's default, never guessed
        assert "ram_mb" not in conf and "swap_mb" not in conf
        return
    assert (conf["ram_mb"], conf["swap_mb"]) == (mib(pages, PAGE), mib(pages, PAGE))
    opts = vzctl_set("--physpages", f"0:{text}", "--swappages", text)
    assert opts["physpages"] == (0, mib(pages, PAGE)) and opts["swappages"][1] == mib(pages, PAGE)


@pytest.mark.parametrize("text,blocks", BLOCKS)
def test_diskspace_values_mean_what_vzctl_stored(text, blocks):
    assert parse_amount(text, BLOCK) // BLOCK == blocks  # vzctl's whole blocks
    conf = parse_vps_conf(f'DISKSPACE="{text}:{text}"\n')
    assert (conf["disk_soft_mb"], conf["disk_mb"]) == (mib(blocks, BLOCK), mib(blocks, BLOCK))
    assert vzctl_set("--diskspace", text)["diskspace"] == (mib(blocks, BLOCK), mib(blocks, BLOCK))


def test_vswap_diskspace_pair_is_kept_not_replaced_by_the_default():
    """DISKSPACE="2G:2.2G" as in vzctl's ve-vswap-*.conf-sample files: barrier 2G, limit 2.2G."""
    conf = parse_vps_conf('DISKSPACE="2G:2.2G"\nDISKINODES="131072:144179"\nPHYSPAGES="0:512M"\n'
                          'SWAPPAGES="0:1G"\n')
    assert (conf["disk_soft_mb"], conf["disk_mb"]) == (2048, 2252)
    assert (conf["diskinodes_soft"], conf["diskinodes"]) == (131072, 144179)
    assert (conf["ram_mb"], conf["swap_mb"]) == (512, 1024)
    assert vzctl_set("--diskspace", "2G:2.2G")["diskspace"] == (2048, 2252)


def test_a_barrier_alone_is_also_the_limit():
    assert parse_vps_conf('DISKSPACE="1048576"\n')["disk_mb"] == 1024
    assert parse_vps_conf('DISKSPACE="1048576"\n')["disk_soft_mb"] == 1024
    assert vzctl_set("--diskspace", "10G")["diskspace"] == (10240, 10240)


@pytest.mark.parametrize("text,count", COUNTS)
def test_counts_take_no_unit(text, count):
    assert parse_count(text) == count
    conf = parse_vps_conf(f'NUMPROC="{text}:{text}"\nDISKINODES="{text}:{text}"\n')
    assert conf.get("numproc") == count and conf.get("diskinodes") == count
    assert vzctl_set("--numproc", text)["numproc"] == (count, count)


@pytest.mark.parametrize("text", REFUSED_COUNTS)
def test_counts_with_a_unit_are_refused_as_vzctl_refused_them(text):
    with pytest.raises(BadAmount):
        parse_count(text)
    conf = parse_vps_conf(f'NUMPROC="{text}"\nDISKINODES="{text}"\n')
    assert "numproc" not in conf and "diskinodes" not in conf
    with pytest.raises(CommandError):
        vzctl_set("--numproc", text)
    with pytest.raises(CommandError):
        vzctl_set("--diskinodes", text)


def test_a_vswap_physpages_barrier_of_0_means_no_barrier():
    """PHYSPAGES="0:262144", as every vswap sample has it: no barrier, a 1 GiB limit."""
    from containers.management.commands.vzctl import limit_changes
    opts = vzctl_set("--physpages", "0:262144")
    assert limit_changes(opts) == {"ram_barrier_mb": None, "ram_mb": 1024}
    assert limit_changes(vzctl_set("--physpages", "128M:256M")) == {"ram_barrier_mb": 128, "ram_mb": 256}
