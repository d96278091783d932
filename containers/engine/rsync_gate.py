#!/usr/bin/python3
"""The forced command of the panel's migration key on a destination host (authorized_keys).

    command="/usr/bin/python3 -I .../rsync_gate.py LXCPATH",restrict ssh-ed25519 ... vzpanel-agent@SOURCE

Whatever the peer asks for, the only thing that runs is `rsync --server` receiving into an
incoming copy under LXCPATH (.vzpanel-incoming-<CTID>-<task>/...), with the options the
panel's own migrations use. rrsync does the same job but refuses --modify-window=-1
(sent as "-@-1"), which the second pass needs to see files changed within a second.
Plain Python, standard library only: sshd runs it with the system's python3.
"""
import os
import re
import shlex
import sys

OPTION_PATTERNS = [
    r"-[ACDEHIJKLNORSUWXbcdgklmnopqrstuvxyz]*(e\.[A-Za-z]*)?",  # rsync's packed short options
    r"-@-?\d+",              # --modify-window
    r"--timeout=\d+", r"--bwlimit=\d+", r"--delete", r"--numeric-ids",
]
DEST_PATTERN = r"\.vzpanel-incoming-\d+-\d+(/[A-Za-z0-9._-]+)*/?"


def refuse(why: str) -> "None":
    sys.stderr.write(f"vzpanel rsync gate: refused: {why}\n")
    sys.exit(2)


def main() -> None:
    if len(sys.argv) != 2 or not os.path.isabs(sys.argv[1]):
        refuse("usage: rsync_gate.py LXCPATH")
    root = sys.argv[1]
    try:
        argv = shlex.split(os.environ.get("SSH_ORIGINAL_COMMAND", ""))
    except ValueError:
        refuse("unparsable command")
    if len(argv) < 5 or argv[:2] != ["rsync", "--server"] or "--sender" in argv:
        refuse("only rsync receiving into an incoming copy is allowed")
    *options, dot, dest = argv[2:]
    if dot != ".":
        refuse("unexpected arguments")
    for option in options:
        if not any(re.fullmatch(p, option) for p in OPTION_PATTERNS):
            refuse(f"option {option!r}")
    if not re.fullmatch(DEST_PATTERN, dest) or ".." in dest.split("/"):
        refuse(f"destination {dest!r}")
    os.chdir(root)
    os.execv("/usr/bin/rsync", ["rsync", "--server", *options, ".", dest])


if __name__ == "__main__":
    main()
