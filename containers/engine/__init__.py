"""Host-facing code: LXC, root filesystems, OS templates, host metrics.

This package imports nothing from Django. Only the host agent calls it; the web
process never does. Every external program is run through `commands.run` with an
argv list, never through a shell.
"""
