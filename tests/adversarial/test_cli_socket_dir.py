"""An outside tester's attack on the shell commands' server's socket directory.

In production the socket is VAR_DIR/cli/cli.sock and VAR_DIR (/var/lib/vzpanel/panel) is root:vzpanel
0770: the web user (its group) may rename what is in it, `cli` among them. The server, root, makes
`cli` 0700 and binds its socket there at each start; if it named the directory again after checking
it, the web user could swap the name for a link in between and have root change the mode of, or
bind its socket in, a directory of the web user's choosing (chmod 0700 /etc: the host broken)."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from panel import cliserver

# The web user's side: exchange the names `cli` and `evil` (a link to the decoy) as fast as it can,
# atomically (renameat2 RENAME_EXCHANGE), so `cli` is now the real directory, now the link.
SWAPPER = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
a, b = os.fsencode(sys.argv[1]), os.fsencode(sys.argv[2])
print("ready", flush=True)
while True:
    if libc.renameat2(-100, a, -100, b, 2) != 0:
        sys.exit(ctypes.get_errno())
"""
ATTEMPTS = 3000


def test_a_swapped_socket_directory_never_leads_root_elsewhere(tmp_path):
    var = tmp_path / "var"
    var.mkdir()
    decoy = tmp_path / "decoy"  # a directory the attacker names: /etc, say
    decoy.mkdir(mode=0o755)
    decoy.chmod(0o755)
    (var / "cli").mkdir(mode=0o700)
    (var / "evil").symlink_to(decoy)
    swapper = subprocess.Popen([sys.executable, "-c", SWAPPER, str(var / "cli"), str(var / "evil")],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert swapper.stdout.readline().strip() == "ready"
        for _ in range(ATTEMPTS):
            try:
                cliserver.prepare_socket(var / "cli" / "cli.sock").close()
            except (RuntimeError, OSError):
                pass  # refused: it saw the link, or the name went while it worked (a start that fails)
            assert swapper.poll() is None
            assert stat.S_IMODE(decoy.stat().st_mode) == 0o755, "root changed the mode of the directory the link named"
            assert not (decoy / "cli.sock").exists(), "root bound its socket in the directory the link named"
    finally:
        swapper.kill()
        swapper.wait()
    real = var / "cli" if not (var / "cli").is_symlink() else var / "evil"
    assert stat.S_IMODE(os.lstat(real).st_mode) == 0o700
    assert stat.S_IMODE(decoy.stat().st_mode) == 0o755
    assert not list(decoy.iterdir())
