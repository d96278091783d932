"""Running host programs: argv lists only, never a shell, with a timeout."""
from __future__ import annotations

import subprocess
import threading
from dataclasses import dataclass
from typing import Callable, Sequence

# Called with (stream name "stdout" or "stderr", a chunk of bytes) as a program writes it.
OutputCallback = Callable[[str, bytes], None]


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
        input_text: str | None = None, keep_last: int | None = None,
        on_output: OutputCallback | None = None) -> CommandResult:
    """Run argv and return its result; raise CommandError on failure if check. With `keep_last`,
    only the last that many bytes of each output are kept however much the program writes
    (a command a tenant runs may write gigabytes). `on_output` (with `keep_last` only) sees each
    chunk of output as it is read, from the reading threads."""
    if isinstance(argv, str):  # a string would be split by nobody: refuse it outright
        raise TypeError("run() takes an argv list, not a string")
    if keep_last is not None:
        return _run_keeping_last(list(argv), timeout, check, input_text, keep_last, on_output)
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


def _tail_reader(stream, keep: int, into: list, on_chunk: Callable[[bytes], None] | None = None) -> threading.Thread:
    """Read `stream` to its end in a thread, keeping its last `keep` bytes in into[0]; `on_chunk`
    sees each piece as soon as it is read (read1: what is there, not a full buffer)."""
    def read():
        tail = bytearray()
        while chunk := stream.read1(1 << 16):
            if on_chunk is not None:
                on_chunk(chunk)
            tail += chunk
            if len(tail) > 2 * keep:
                del tail[:-keep]
        into.append(bytes(tail[-keep:]) if keep else b"")
    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def _run_keeping_last(argv: list[str], timeout: float, check: bool, input_text: str | None,
                      keep: int, on_output: OutputCallback | None = None) -> CommandResult:
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except FileNotFoundError as exc:
        raise CommandError(argv, 127, f"{argv[0]}: program not found") from exc
    outputs: tuple[list, list] = ([], [])
    readers = [_tail_reader(stream, keep, into, on_output and (lambda chunk, name=name: on_output(name, chunk)))
               for name, stream, into in (("stdout", proc.stdout, outputs[0]), ("stderr", proc.stderr, outputs[1]))]
    try:
        if input_text is not None:
            try:
                proc.stdin.write(input_text.encode())
                proc.stdin.close()
            except BrokenPipeError:
                pass
        proc.wait(timeout)
    except subprocess.TimeoutExpired as exc:
        proc.kill()
        proc.wait()
        raise CommandError(argv, -1, f"timed out after {timeout:g} s") from exc
    finally:
        for reader in readers:
            reader.join(30)
        proc.stdout.close()
        proc.stderr.close()
    stdout, stderr = (b"".join(o).decode(errors="replace") for o in outputs)
    if check and proc.returncode != 0:
        raise CommandError(argv, proc.returncode, stderr or stdout)
    return CommandResult(argv, proc.returncode, stdout, stderr)
