"""Server-generated secrets, their hashes, and the password strength rule.

Rules: every secret is made here with the ``secrets`` module, never chosen by a
client (except a password a user sets deliberately, which must pass the strength
rule); API keys and link tokens are stored as SHA-256 digests, which is enough
for long random strings and lets one indexed lookup find them; passwords are
stored as bcrypt hashes computed on the gevent hub's thread pool so that a hash
does not stall every other connection.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import string

import bcrypt

from kahuna.errors import Unprocessable
from kahuna.watchdog import off_hub

ALPHANUMERIC = string.ascii_letters + string.digits
API_KEY_LENGTH = 64
PASSWORD_LENGTH = 20
MIN_PASSWORD_ENTROPY_BITS = 70
BCRYPT_MAX_BYTES = 72


def generate_api_key() -> str:
    """64 characters from [A-Za-z0-9], the shape the Go Kahuna and its agents use (~380 bits)."""
    return "".join(secrets.choice(ALPHANUMERIC) for _ in range(API_KEY_LENGTH))


def generate_password() -> str:
    """A password safe to paste in JSON, YAML or a shell: letters and digits, ~119 bits."""
    while True:
        candidate = "".join(secrets.choice(ALPHANUMERIC) for _ in range(PASSWORD_LENGTH))
        if password_entropy(candidate) >= MIN_PASSWORD_ENTROPY_BITS:
            return candidate


def generate_link_token() -> str:
    """A single-use token for an e-mailed link (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def generate_signing_key() -> str:
    """An HMAC key for JWTs: 64 characters (384 bits), enough for HS256 to HS512."""
    return secrets.token_urlsafe(48)


def digest(secret: str) -> str:
    """The stored form of an API key or link token."""
    return hashlib.sha256(secret.encode()).hexdigest()


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison of two secrets of any length."""
    return hmac.compare_digest(given.encode(), expected.encode())


# -- password strength -------------------------------------------------------
# The rule of the Go Kahuna (wagslane/go-password-validator 0.3.0): entropy =
# length x log2(size of the character classes used) must reach 70 bits, where the
# length ignores runs of repeated characters and keyboard or alphabet sequences.

_REPLACE_CHARS = "!@$&*"
_SEPARATOR_CHARS = "_-., "
_OTHER_SPECIAL_CHARS = "\"#%'()+/:;<=>?[\\]^{|}~"
_SEQUENCES = ("0123456789", "qwertyuiop", "asdfghjkl", "zxcvbnm", string.ascii_lowercase)
_CLASSES = (
    (_REPLACE_CHARS, len(_REPLACE_CHARS)),
    (_SEPARATOR_CHARS, len(_SEPARATOR_CHARS)),
    (_OTHER_SPECIAL_CHARS, len(_OTHER_SPECIAL_CHARS)),
    (string.ascii_lowercase, 26),
    (string.ascii_uppercase, 26),
    (string.digits, 10),
)


def _base(password: str) -> int:
    used_classes = set()
    others = 0
    for char in set(password):
        for index, (members, _) in enumerate(_CLASSES):
            if char in members:
                used_classes.add(index)
                break
        else:
            others += 1
    return others + sum(_CLASSES[index][1] for index in used_classes)


def _drop_long_repeats(chars: list[str]) -> list[str]:
    kept: list[str] = []
    for char in chars:
        if len(kept) >= 2 and kept[-1] == char and kept[-2] == char:
            continue
        kept.append(char)
    return kept


def _effective_length(password: str) -> int:
    chars = _drop_long_repeats(list(password))
    for sequence in _SEQUENCES:
        chars = _drop_sequence(chars, sequence)
        chars = _drop_sequence(chars, sequence[::-1])
    return len("".join(chars).encode())


def _drop_sequence(chars: list[str], sequence: str) -> list[str]:
    kept: list[str] = []
    previous = ""
    run = 0
    for char in chars:
        position = sequence.find(char)
        follows = previous and position > 0 and sequence[position - 1] == previous
        run = run + 1 if follows else 1
        previous = char
        if run <= 2:
            kept.append(char)
    return kept


def password_entropy(password: str) -> float:
    base = _base(password)
    if base <= 1:
        return 0.0
    return _effective_length(password) * math.log2(base)


def check_password_strength(password: str) -> None:
    """Raise :class:`Unprocessable` with hints when *password* is too weak or too long for bcrypt."""
    if len(password.encode()) > BCRYPT_MAX_BYTES:
        raise Unprocessable(f"password is longer than {BCRYPT_MAX_BYTES} bytes")
    if password_entropy(password) >= MIN_PASSWORD_ENTROPY_BITS:
        return
    hints = []
    if not all(any(c in members for c in password) for members, _ in _CLASSES[:3]):
        hints.append("including more special characters")
    for members, hint in ((string.ascii_lowercase, "using lowercase letters"),
                          (string.ascii_uppercase, "using uppercase letters"),
                          (string.digits, "using numbers")):
        if not any(c in members for c in password):
            hints.append(hint)
    advice = (", ".join(hints) + " or using a longer password") if hints else "using a longer password"
    raise Unprocessable(f"insecure password, try {advice}")


class PasswordHasher:
    """bcrypt, run on the gevent hub's thread pool (a hash takes 60-250 ms of CPU)."""

    def __init__(self, cost: int = 12):
        self.cost = cost
        # Checked against when there is no real hash, so that the answer takes as long.
        self._dummy_hash = off_hub(bcrypt.hashpw, b"kahuna-dummy", bcrypt.gensalt(cost))

    def hash(self, password: str) -> str:
        salt = bcrypt.gensalt(self.cost)
        return off_hub(bcrypt.hashpw, password.encode(), salt).decode()

    def verify(self, password: str, hashed: str | None) -> bool:
        encoded = password.encode()
        if not hashed or len(encoded) > BCRYPT_MAX_BYTES:
            # Spend the same time as a real check, so that timing does not tell a missing hash apart.
            off_hub(bcrypt.checkpw, b"x", self._dummy_hash)
            return False
        try:
            return off_hub(bcrypt.checkpw, encoded, hashed.encode())
        except ValueError:
            return False
