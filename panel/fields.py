"""Whole-number fields for forms and serializers that read numbers as panel.validators does.

Django's and DRF's IntegerField call int(), which takes "٣٠١" (Arabic-Indic digits), "１０１"
(fullwidth), "1_000", "5.0" and " 7\\n": these take ASCII digits (with a minus sign, so that a
negative number gets the field's own "at least" message) and, in JSON, integers; nothing else.
A form, the API and the CLI so refuse the same inputs.
"""
from __future__ import annotations

import re

from django import forms
from rest_framework import serializers

from .validators import NUMBER_DIGITS_MAX

_SIGNED_RE = re.compile(r"-?[0-9]{1,%d}" % NUMBER_DIGITS_MAX)


def ascii_int(value) -> int | None:
    """`value` as an int if it is one (not a bool) or is written in ASCII digits; else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _SIGNED_RE.fullmatch(value):
        return int(value)
    return None


class AsciiIntegerField(forms.IntegerField):
    """forms.IntegerField reading ASCII digits only; its bounds and messages are Django's."""

    def to_python(self, value):
        if value in self.empty_values:
            return None
        number = ascii_int(value)
        if number is None:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return number


class AsciiIntegerSerializerField(serializers.IntegerField):
    """serializers.IntegerField taking a JSON integer or a string of ASCII digits, nothing else
    (not 5.0, true, "٣" or " 7")."""

    def to_internal_value(self, data):
        number = ascii_int(data)
        if number is None:
            self.fail("invalid")
        return number
