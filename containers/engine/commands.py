"""Running host programs: argv lists only, never a shell, with a timeout."""
from __future__ import annotations

import subprocess
from dataclasses import dataclass
from typing import Sequence


class CommandError(Exception):
    """A host program failed; the message carries its own error text."""

    def __init__(self, argv: Sequence[str], returncode: int, output: str):
        self.argv = list(argv)
        self.returncode = returncode
        self.output = output.strip()
        tool = self.argv[0] if self.argv else "?"
        detail = self.output or "(no output)"
        super().__init__(f"{tool} exited with status {returncode}: {detail}")


@dataclass
class CommandResult:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str


def run(argv: Sequence[str], *, timeout: float = 120, check: bool = True,
        input_text: str | None = None) -> CommandResult:
    """Run argv and return its result; raise CommandError on failure if check."""
    if isinstance(argv, str):  # a string would be split by nobody: refuse it outright
        raise TypeError("run() takes an argv list, not a string")
    try:
        proc = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout,
            input=input_text, errors="replace",
        )
    except subprocess.TimeoutExpired as exc:
        raise CommandError(argv, -1, f"timed out after {timeout:g} s") from exc
    except FileNotFoundError as exc:
        raise CommandError(argv, 127, f"{argv[0]}: program not found") from exc
    result = CommandResult(list(argv), proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        raise CommandError(argv, proc.returncode, proc.stderr or proc.stdout)
    return result
