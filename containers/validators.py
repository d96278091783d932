"""The container validators live in panel/validators.py with the others (one set for every app);
kept importable here because migrations and older code name them by this path."""
from panel.validators import (CTID_MAX, CTID_MIN, UTS_NAME_MAX, is_ascii_number, validate_command,
                              validate_ctid, validate_hostname, validate_name_alias)

__all__ = ["CTID_MAX", "CTID_MIN", "UTS_NAME_MAX", "is_ascii_number", "validate_command", "validate_ctid",
           "validate_hostname", "validate_name_alias"]
