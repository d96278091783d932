"""SHA-512 crypt ("$6$", Ulrich Drepper's SHA-crypt), as glibc's crypt(3), chpasswd and
`openssl passwd -6` write it into /etc/shadow.

The web process hashes a root password given at create time with it, so the clear text never
leaves the request (not in the task, the queue, Redis or a log). Python's own `crypt` module is
deprecated and gone in Python 3.13 (Debian 13), and the web process runs no programs, so the
algorithm is here, checked against `openssl passwd -6` and the specification's test vectors
(tests/test_create_fields.py).
"""
from __future__ import annotations

import hashlib
import re
import secrets

ITOA64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# 5000 rounds: what chpasswd and openssl write by default, so the container's own tools see nothing odd.
DEFAULT_ROUNDS = 5000
SALT_LENGTH = 16
# What the agent accepts to write into a container's /etc/shadow: a $6$ hash and nothing else (no
# ':' or line break could ever reach the file through it).
SHA512_CRYPT_RE = re.compile(r"\$6\$(rounds=[1-9][0-9]{3,8}\$)?[./0-9A-Za-z]{1,16}\$[./0-9A-Za-z]{86}")

# The order in which SHA-crypt spreads the 64 bytes of the last digest over its base-64 text.
_ORDER = ((0, 21, 42), (22, 43, 1), (44, 2, 23), (3, 24, 45), (25, 46, 4), (47, 5, 26), (6, 27, 48),
          (28, 49, 7), (50, 8, 29), (9, 30, 51), (31, 52, 10), (53, 11, 32), (12, 33, 54), (34, 55, 13),
          (56, 14, 35), (15, 36, 57), (37, 58, 16), (59, 17, 38), (18, 39, 60), (40, 61, 19), (62, 20, 41))


def _b64(b2: int, b1: int, b0: int, n: int) -> str:
    w = (b2 << 16) | (b1 << 8) | b0
    out = []
    for _ in range(n):
        out.append(ITOA64[w & 0x3F])
        w >>= 6
    return "".join(out)


def _repeat(digest: bytes, length: int) -> bytes:
    return (digest * (length // len(digest) + 1))[:length]


def sha512_crypt(password: str, salt: str | None = None, rounds: int = DEFAULT_ROUNDS) -> str:
    """The "$6$salt$hash" of `password` (UTF-8); a random 16-character salt unless one is given."""
    if salt is None:
        salt = "".join(secrets.choice(ITOA64) for _ in range(SALT_LENGTH))
    if not 1000 <= rounds <= 999_999_999:
        raise ValueError("SHA-crypt takes 1000 to 999999999 rounds")
    key, salt_bytes = password.encode(), salt.encode()[:SALT_LENGTH]
    sha = hashlib.sha512
    alternate = sha(key + salt_bytes + key).digest()
    a = sha(key + salt_bytes)
    a.update(_repeat(alternate, len(key)))
    n = len(key)
    while n:
        a.update(alternate if n & 1 else key)
        n >>= 1
    digest = a.digest()
    p_bytes = _repeat(sha(key * len(key)).digest(), len(key))
    s_bytes = _repeat(sha(salt_bytes * (16 + digest[0])).digest(), len(salt_bytes))
    for i in range(rounds):
        c = sha(p_bytes if i & 1 else digest)
        if i % 3:
            c.update(s_bytes)
        if i % 7:
            c.update(p_bytes)
        c.update(digest if i & 1 else p_bytes)
        digest = c.digest()
    text = "".join(_b64(digest[x], digest[y], digest[z], 4) for x, y, z in _ORDER) + _b64(0, 0, digest[63], 2)
    prefix = "$6$" + ("" if rounds == DEFAULT_ROUNDS else f"rounds={rounds}$")
    return f"{prefix}{salt_bytes.decode()}${text}"
