#!/usr/bin/python3
"""Print the panel's Python dependencies from pyproject.toml, one a line (a pip requirements file).

A production install puts only these into its virtualenv: the code runs from /opt/vzpanel/app, so
nothing needs building, and a wheelhouse of these wheels is all an offline host needs.
"""
import sys
import tomllib
from pathlib import Path

pyproject = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "pyproject.toml")
print("\n".join(tomllib.loads(pyproject.read_text())["project"]["dependencies"]))
