"""panel.validators by properties: lookalike letters and digits (Kelvin sign, long s, dotless i,
fullwidth, Arabic-Indic and superscript digits), control characters and line breaks, huge numbers,
inf/nan/1e400 are refused with one clear line, or accepted only in canonical ASCII form; and every
entry point (form, serializer, CLI parser, service, archive import) refuses the same inputs."""
from __future__ import annotations

import ipaddress
import re
import shlex
import string

import pytest
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from hypothesis import HealthCheck, example, given, settings, strategies as st
from rest_framework import serializers

from containers import services
from containers.api.serializers import ContainerCreateSerializer, ContainerUpdateSerializer
from containers.engine.ctconf import parse_vps_conf
from containers.forms import ContainerCreateForm, ContainerSettingsForm
from containers.management.commands.vzctl import Command as Vzctl
from backups.management.commands.vzrestore import Command as Vzrestore
from network import services as net
from panel import validators as v

pytestmark = pytest.mark.contract

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ENTRY_POINTS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# What a loose check lets through: letters that casefold to ASCII, digits int() reads, blanks and
# breaks a line-based file or a `$` lets through, invisible characters.
LOOKALIKES = ("\u212a\u017f\u0131\u0130\u00df\ufb01\uff21\uff41\u0430\u03bf\u0455"  # K ſ ı İ ß ﬁ Ａ ａ а ο ѕ
              "\uff10\uff11\u0660\u0663\u06f3\u0969\u00b2\u00b9\u2070\u2075\u2081\u2460")  # digits of all kinds
CONTROLS = "\x00\t\n\r\x0b\x0c\x1b\x7f\x85\u2028\u2029\u200b\u200e\ufeff\u00a0\u3000"
HOSTILE = LOOKALIKES + CONTROLS
hostile_char = st.one_of(st.sampled_from(HOSTILE), st.characters(min_codepoint=128),
                         st.characters(categories=["Cc", "Cf", "Zs", "Zl", "Zp"]))
# Text that mixes the valid alphabet with what should never pass.
mixed_text = st.text(alphabet=st.one_of(st.sampled_from(string.ascii_letters + string.digits + ".-_ :%/"),
                                        hostile_char), max_size=80)
numberish = st.one_of(
    st.text(alphabet=st.one_of(st.sampled_from("0123456789+-. eEinfatxKMG_,"), hostile_char), max_size=25),
    st.sampled_from(["inf", "-inf", "nan", "NaN", "1e400", "1e3", "0x65", "1_000", "٣٠١", "１０１", "²", " 101",
                     "101\n", "+101", "-101", "99999999999999999999999", str(2 ** 63), str(2 ** 64), "", "1.0"]),
    st.integers(0, 10 ** 30).map(str))


def spoiled(valid: st.SearchStrategy, inner_only: bool = False) -> st.SearchStrategy:
    """A valid value with one hostile character put somewhere in it (`inner_only`: not at the ends,
    for parsers that drop blanks around a value)."""
    def put(args):
        text, char, where = args
        low, high = (1, len(text) - 1) if inner_only else (0, len(text))
        at = low + where % (high - low + 1) if high >= low else 0
        return text[:at] + char + text[at:]
    return st.tuples(valid, hostile_char, st.integers(0, 1000)).map(put)


REFUSED = object()


def result_of(check, value):
    """What `check` makes of `value`, or REFUSED; a refusal's message must be one clear line."""
    try:
        return check(value)
    except ValidationError as exc:
        text = v.messages(exc)
        assert text and "\n" not in text and "\r" not in text and len(text) < 400, text
        return REFUSED


def refusal(check, value) -> bool:
    return result_of(check, value) is REFUSED


# -- independent oracles: what each value may be, spelled with sets of ASCII characters -------
LDH = set(string.ascii_letters + string.digits + "-")


def ldh_labels(value: str) -> bool:
    labels = (value[:-1] if value.endswith(".") else value).split(".")
    return all(1 <= len(lb) <= 63 and set(lb) <= LDH and lb[0] != "-" and lb[-1] != "-" for lb in labels)


def hostname_oracle(value: str) -> bool:
    return 0 < len(value) <= 64 and ldh_labels(value)


def ascii_digits(value: str, most: int) -> bool:
    return 0 < len(value) <= most and set(value) <= set(string.digits)


label = st.from_regex(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,12}[A-Za-z0-9])?", fullmatch=True)
hostnames = st.lists(label, min_size=1, max_size=4).map(".".join).filter(lambda h: len(h) <= 64)


# -- hostnames ----------------------------------------------------------------------------
@PROPERTY
@given(st.one_of(mixed_text, spoiled(hostnames), hostnames))
@example("\u212aelvin.example")
@example("\u017fite.example")
@example("\u0131nside.example")
@example("host\n")
@example("a" * 60 + "." + "b" * 60)
@example("a..")
def test_hostname_is_ascii_ldh_within_the_kernels_64(value):
    assert (not refusal(v.validate_hostname, value)) == hostname_oracle(value), value


@PROPERTY
@given(hostnames, spoiled(hostnames))
def test_a_valid_hostname_passes_and_one_hostile_character_spoils_it(good, bad):
    assert not refusal(v.validate_hostname, good)
    assert refusal(v.validate_hostname, bad)


@PROPERTY
@given(st.one_of(mixed_text, st.lists(hostnames, max_size=8).map(" ".join), spoiled(hostnames)))
@example("a.example\nnameserver 6.6.6.6")
@example("a.example\tb.example")
def test_search_domains_are_space_separated_ascii_domains(value):
    clean = result_of(v.clean_searchdomain, value)
    if clean is REFUSED:
        return
    words = value.split(" ")
    assert clean == " ".join(w for w in words if w) and clean.isascii() and clean.isprintable()
    assert all(ldh_labels(d) and len(d) <= 253 for d in clean.split(" ") if d)
    assert len(clean.split()) <= 6


# -- numbers: CTIDs, counts, sizes -----------------------------------------------------------
@PROPERTY
@given(st.one_of(numberish, st.integers(-2 ** 70, 2 ** 70), st.floats(allow_nan=True, allow_infinity=True),
                 st.booleans(), st.none()))
@example(float("inf"))
@example(True)
def test_ctid_is_ascii_digits_in_range(value):
    if isinstance(value, str):
        expected = ascii_digits(value, 10) and v.CTID_MIN <= int(value) <= v.CTID_MAX
    else:
        expected = type(value) is int and v.CTID_MIN <= value <= v.CTID_MAX
    assert (not refusal(v.validate_ctid, value)) == expected, value


@PROPERTY
@given(st.one_of(numberish, st.floats(allow_nan=True, allow_infinity=True), st.booleans()))
def test_whole_numbers_are_ascii_digits_only(value):
    number = result_of(lambda t: v.whole_number(t, "n"), value)
    if number is REFUSED:
        assert not (isinstance(value, str) and ascii_digits(value, 18))
        return
    assert isinstance(value, str) and ascii_digits(value, 18) and number == int(value)
    assert number < 2 ** 63  # any database integer holds it


SIZE = re.compile(r"[0-9]{1,19}(\.[0-9]{1,6})?[KMGTPkmgtp]?")  # written out again, independently


@PROPERTY
@given(st.one_of(numberish, st.integers(0, 10 ** 6).flatmap(
    lambda n: st.sampled_from(["K", "M", "G", "T", "k", "m", "g", ""]).map(lambda u: f"{n}{u}"))))
@example("inf")
@example("infM")
@example("nan")
@example("1e400G")
@example(" 64M")
@example("64M ")
@example("\u0661\u0662M")
def test_sizes_are_vzctls_ascii_units(value):
    mb = result_of(v.size_mb, value)
    if mb is REFUSED:
        return
    assert SIZE.fullmatch(value), value
    assert isinstance(mb, int) and 0 <= mb < 2 ** 62


@PROPERTY
@given(st.integers(0, 10 ** 6), st.sampled_from([("K", 1 / 1024), ("M", 1), ("G", 1024), ("T", 1 << 20)]))
def test_sizes_mean_what_vzctl_means(n, unit):
    suffix, mib = unit
    assert v.size_mb(f"{n}{suffix}") == (max(1, int(n * mib)) if n else 0)


# -- addresses and nameservers ----------------------------------------------------------------
@PROPERTY
@given(st.ip_addresses())
def test_addresses_pass_in_canonical_form(ip):
    assert v.parse_ip(str(ip)) == ip
    assert v.parse_ip(ip.exploded) == ip and str(v.parse_ip(ip.exploded)) == str(ip)


@PROPERTY
@given(st.ip_addresses(v=6), st.text(max_size=20))
@example(ipaddress.ip_address("2001:db8::5"), "x")
@example(ipaddress.ip_address("fe80::1"), "a\nnameserver 6.6.6.6")
def test_no_address_keeps_a_scope_id(ip, scope):
    assert refusal(v.parse_ip, f"{ip}%{scope}")
    assert refusal(v.clean_nameservers, [f"{ip}%{scope}"])


@PROPERTY
@given(st.one_of(spoiled(st.ip_addresses().map(str), inner_only=True), mixed_text))
def test_an_accepted_address_is_plain_ascii(value):
    ip = result_of(v.parse_ip, value)
    if ip is REFUSED:
        return
    assert value.strip().isascii() and "%" not in value and str(ip) == str(ipaddress.ip_address(value.strip()))


@PROPERTY
@given(st.lists(st.ip_addresses().map(str), min_size=4, max_size=8))
def test_at_most_three_nameservers(addresses):
    assert refusal(v.clean_nameservers, addresses)
    assert v.clean_nameservers(addresses[:3]) == [str(ipaddress.ip_address(a)) for a in addresses[:3]]


# -- names and paths -------------------------------------------------------------------------
NAME_CHARS = set(string.ascii_letters + string.digits + "._-")


@PROPERTY
@given(st.one_of(mixed_text, spoiled(st.from_regex(r"[a-z][a-z0-9_.-]{0,20}", fullmatch=True))))
@example("name\n")
@example("n\u212ame")
@example("123")
def test_names_are_ascii_and_never_a_number(value):
    canonical = 0 < len(value) <= 64 and set(value) <= NAME_CHARS and value[0] not in "._-"
    assert (not refusal(v.validate_name, value)) == canonical
    assert (not refusal(v.validate_name_alias, value)) == (canonical and not value.isdigit())


@PROPERTY
@given(st.one_of(mixed_text, spoiled(st.sampled_from(["root", "www-data", "_apt", "user1"]))))
@example("root\n")
@example("r\u043eot")
def test_user_names_inside_a_container_are_useradds(value):
    expected = 0 < len(value) <= 32 and set(value) <= set(string.ascii_lowercase + string.digits + "_-") \
        and value[0] in string.ascii_lowercase + "_"
    assert (not refusal(v.validate_system_user, value)) == expected


@PROPERTY
@given(st.one_of(mixed_text, spoiled(st.sampled_from(["alice", "j.doe", "student-7", "ab"]))))
@example("alice\n")
@example("\u212aate")  # Kelvin sign
@example("a")
def test_panel_usernames_are_ascii_lower_case(value):
    expected = 2 <= len(value) <= 32 and set(value) <= set(string.ascii_lowercase + string.digits + "._-") \
        and value[0] in string.ascii_lowercase
    assert (not refusal(v.validate_panel_username, value)) == expected


@PROPERTY
@given(mixed_text)
@example("new")
@example("acme\n")
def test_slugs_and_host_names_are_lower_case_labels(value):
    label_ok = 0 < len(value) and set(value) <= set(string.ascii_lowercase + string.digits + "-") \
        and value[0] != "-" and value[-1] != "-"
    assert (not refusal(v.validate_slug, value)) == (label_ok and len(value) <= 40
                                                         and value not in ("new", "edit", "api", "admin"))
    assert (not refusal(v.validate_host_name, value)) == (label_ok and len(value) <= 63)


@PROPERTY
@given(st.one_of(mixed_text, st.lists(st.from_regex(r"[a-z0-9._-]{1,8}", fullmatch=True), max_size=5)
                 .map(lambda parts: "/" + "/".join(parts))))
@example("/var/lib/lxc\n")
@example("/var/lib/../../etc")
@example("/srv/dump ")
@example("relative/path")
def test_host_paths_are_absolute_plain_ascii(value):
    clean = result_of(v.clean_host_path, value)
    if clean is REFUSED:
        return
    parts = clean.split("/")
    assert clean.startswith("/") and clean.isascii() and clean.isprintable() and " " not in clean
    assert "." not in parts and ".." not in parts and v.clean_host_path(clean) == clean


@PROPERTY
@given(st.one_of(mixed_text, st.text(max_size=120)))
@example("Nightly\r\nBcc: x@example.com")
def test_titles_are_one_printable_line(value):
    if not refusal(lambda t: v.validate_title(t, "name", 100), value):
        assert value.isprintable() and value == value.strip() and "\n" not in value


# -- every entry point refuses the same inputs --------------------------------------------------
def accepts(check, value) -> bool:
    try:
        check(value)
    except (ValidationError, serializers.ValidationError, CommandError, SystemExit, services.InvalidRequest):
        return False
    return True


def form_field(form, name):
    return lambda value: form.base_fields[name].clean(value)


def api_field(serializer, name):
    return lambda value: serializer._declared_fields[name].run_validation(value)


def cli(command, *argv_before):
    """The command's own argparse parser (CommandError instead of exiting)."""
    parser = command().create_parser("manage.py", command.__module__.rsplit(".", 1)[-1])
    return lambda *args: parser.parse_args([*argv_before, *args])


vzctl_create = cli(Vzctl)
vzctl_set = cli(Vzctl, "set", "101")


@ENTRY_POINTS
@given(st.one_of(numberish, st.integers(v.CTID_MIN, v.CTID_MAX).map(str)))
def test_ctid_entry_points_agree(value):
    answers = {
        "validator": accepts(v.validate_ctid, value),
        "form": accepts(form_field(ContainerCreateForm, "ctid"), value),
        "api": accepts(api_field(ContainerCreateSerializer, "ctid"), value),
        "vzctl create": accepts(lambda t: vzctl_create("create", t, "--ostemplate", "x"), value),
        "vzrestore": accepts(cli(Vzrestore, "backup-1"), value),
    }
    assert len(set(answers.values())) == 1, (value, answers)


@ENTRY_POINTS
@given(st.one_of(mixed_text, hostnames, spoiled(hostnames)))
@example("\u212aelvin.example")
@example("host\n")
@example(" host")
def test_hostname_entry_points_agree(value):
    from containers.models import Container
    answers = {
        "validator": accepts(v.validate_hostname, value),
        "model": accepts(lambda t: Container._meta.get_field("hostname").clean(t, None), value),
        "create form": accepts(form_field(ContainerCreateForm, "hostname"), value),
        "settings form": accepts(form_field(ContainerSettingsForm, "hostname"), value),
        "create api": accepts(api_field(ContainerCreateSerializer, "hostname"), value),
        "update api": accepts(api_field(ContainerUpdateSerializer, "hostname"), value),
        "vzctl create": accepts(lambda t: vzctl_create("create", "101", "--ostemplate", "x", f"--hostname={t}"),
                                value),
        "vzctl set": accepts(lambda t: vzctl_set(f"--hostname={t}"), value),
        "archive": not v.clean_archive_config({"hostname": value})[1],
    }
    assert len(set(answers.values())) == 1, (value, answers)


@ENTRY_POINTS
@given(st.one_of(mixed_text, spoiled(st.from_regex(r"[a-z][a-z0-9_.-]{0,20}", fullmatch=True))).filter(bool))
def test_name_entry_points_agree(value):
    answers = {
        "validator": accepts(v.validate_name_alias, value),
        "create form": accepts(form_field(ContainerCreateForm, "name"), value),
        "settings form": accepts(form_field(ContainerSettingsForm, "name"), value),
        "create api": accepts(api_field(ContainerCreateSerializer, "name"), value),
        "vzctl set": accepts(lambda t: vzctl_set(f"--name={t}"), value),
    }
    assert len(set(answers.values())) == 1, (value, answers)


LIMIT_OPTIONS = {"cpus": "--cpus", "cpuunits": "--cpuunits", "cpulimit": "--cpulimit", "ioprio": "--ioprio"}


@ENTRY_POINTS
@given(st.sampled_from(sorted(services.LIMIT_RANGES)), st.data())
def test_limit_entry_points_agree(key, data):
    low, high = services.LIMIT_RANGES[key]
    value = data.draw(st.one_of(numberish, st.integers(low, high).map(str), spoiled(st.integers(low, high).map(str)))
                      .filter(bool), label="value")  # empty: the settings form's "leave it as it is"
    answers = {
        "service": accepts(services.validate_limits, {key: value}),
        "settings form": accepts(form_field(ContainerSettingsForm, key), value),
        "update api": accepts(api_field(ContainerUpdateSerializer, key), value),
    }
    if ascii_digits(value, 18) and not low <= int(value) <= high:
        answers.pop("update api")  # some API fields leave the upper bound to the service: a 400 either way
    if key in LIMIT_OPTIONS and accepts(lambda t: v.whole_number(t, key), value):
        assert accepts(lambda t: vzctl_set(f"{LIMIT_OPTIONS[key]}={t}"), value)
    elif key in LIMIT_OPTIONS:
        assert not accepts(lambda t: vzctl_set(f"{LIMIT_OPTIONS[key]}={t}"), value)
    assert len(set(answers.values())) == 1, (key, value, answers)


@ENTRY_POINTS
@given(st.one_of(numberish, st.sampled_from(["512M", "2G", "2.5G", "1048576K", "0.5g", "unlimited"])).filter(bool))
def test_size_entry_points_agree(value):
    """vzctl --physpages and an archive's PHYSPAGES read sizes with the one parser (units.parse_amount)."""
    cli_ok = accepts(lambda t: vzctl_set(f"--physpages=0:{t}"), value)
    assert cli_ok == accepts(lambda t: v.size_mb(t, 4096), value)
    in_archive = "ram_mb" in parse_vps_conf(f"PHYSPAGES=0:{shlex.quote(value)}\n")
    assert in_archive == (cli_ok and value.lower() != "unlimited")


@ENTRY_POINTS
@given(st.one_of(st.ip_addresses().map(str), spoiled(st.ip_addresses().map(str)), mixed_text))
@example("2001:db8::5%x")
@example("fe80::1%a\nnameserver 6.6.6.6")
def test_nameserver_entry_points_agree(value):
    answers = {
        "validator": accepts(v.clean_nameservers, [value]),
        "service": accepts(net.parse_ip, value),
        "vzctl set": accepts(lambda t: vzctl_set(f"--nameserver={t}"), value),
        "archive": not v.clean_archive_config({"nameservers": [value]})[1],
    }
    assert len(set(answers.values())) == 1, (value, answers)


@ENTRY_POINTS
@given(st.one_of(mixed_text, st.lists(hostnames, max_size=7).map(" ".join)))
def test_searchdomain_entry_points_agree(value):
    answers = {
        "validator": accepts(v.clean_searchdomain, value),
        "vzctl set": accepts(lambda t: vzctl_set(f"--searchdomain={t}"), value),
        "archive": not v.clean_archive_config({"searchdomain": value})[1],
    }
    assert len(set(answers.values())) == 1, (value, answers)


@ENTRY_POINTS
@given(numberish)
def test_archive_counts_are_ascii_digits(value):
    """An OpenVZ config's CPUUNITS (and the like) is taken only as ASCII digits, never by int()."""
    conf = parse_vps_conf(f"CPUUNITS={shlex.quote(value)}\n")
    assert ("cpuunits" in conf) == ascii_digits(value, 18)


@pytest.mark.parametrize("config", [{"ram_mb": "\u0665\u0661\u0662"}, {"cpus": 1.5}, {"cpus": True},
                                    {"hostname": "x" * 121}, {"nameservers": ["1.1.1.1%eth0"]},
                                    {"searchdomain": "a.example\nnameserver 6.6.6.6"}])
def test_archive_config_leaves_out_what_vzctl_set_refuses(config):
    clean, skipped = v.clean_archive_config(config)
    assert not any(clean.values()) and len(skipped) == 1 and "\n" not in skipped[0]
