"""Unit tests: what users type is checked with messages that say what is wrong."""
import pytest
from django.core.exceptions import ValidationError

from containers.validators import validate_command, validate_ctid, validate_hostname, validate_name_alias


@pytest.mark.parametrize("ctid", [0, 1, 50, 100])
def test_reserved_ctids_are_rejected_with_reason(ctid):
    with pytest.raises(ValidationError, match="reserved"):
        validate_ctid(ctid)


@pytest.mark.parametrize("ctid", [-1, 10**10, "abc", None])
def test_out_of_range_or_non_numeric_ctids_are_rejected(ctid):
    with pytest.raises(ValidationError):
        validate_ctid(ctid)


@pytest.mark.parametrize("ctid", [101, 1000, 999_999_999])
def test_valid_ctids_pass(ctid):
    validate_ctid(ctid)


@pytest.mark.parametrize("name", ["web1", "web-1.example.com", "a", "x" * 63, "ct101.lab.example.org"])
def test_rfc1123_hostnames_pass(name):
    validate_hostname(name)


@pytest.mark.parametrize("name", ["", "-web", "web-", "we_b", "a..b", "x" * 64, "web 1", "a/b", "ä.example",
                                  ("a" * 60 + ".") * 5])
def test_bad_hostnames_are_rejected(name):
    with pytest.raises(ValidationError):
        validate_hostname(name)


def test_name_alias_may_not_look_like_a_ctid():
    with pytest.raises(ValidationError, match="mistaken for a CTID"):
        validate_name_alias("12345")


@pytest.mark.parametrize("name", ["../etc", "a b", "", "-x", "x" * 65])
def test_bad_name_aliases_are_rejected(name):
    with pytest.raises(ValidationError):
        validate_name_alias(name)


@pytest.mark.parametrize("argv", [[], "ls -l", [1, 2], ["a\x00b"]])
def test_bad_commands_are_rejected(argv):
    with pytest.raises(ValidationError):
        validate_command(argv)
