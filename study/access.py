"""The researcher password: configured, or generated once and kept only as a scrypt hash.

`CONVIS_ADMIN_PASSWORD` (or the same key in Streamlit secrets, passed in by the page) sets the
password. Without it, the first `ensure_password()` generates a random one, stores only its
scrypt hash in `<data dir>/secrets/admin_password.scrypt` (mode 0600) and returns the password
once, for `./run` to print the way Jupyter prints its token. `Throttle` slows repeated wrong
attempts: each failure from a client doubles its wait (up to a few minutes).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from study.config import data_dir

ENV = "CONVIS_ADMIN_PASSWORD"
_N, _R, _P = 2**14, 8, 1            # scrypt cost (~50 ms and 16 MB per check)


def hash_file() -> Path:
    return data_dir() / "secrets" / "admin_password.scrypt"


def _scrypt(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)


def _write_hash(password: str) -> None:
    path = hash_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    salt = secrets.token_bytes(16)
    record = {"kdf": "scrypt", "n": _N, "r": _R, "p": _P, "salt": base64.b64encode(salt).decode(),
              "hash": base64.b64encode(_scrypt(password, salt)).decode()}
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(record, fh)
    os.replace(tmp, path)


def configured(secret: str | None = None) -> bool:
    """True when the password comes from configuration (environment or secrets)."""
    return bool(os.environ.get(ENV) or secret)


def ensure_password(secret: str | None = None) -> str | None:
    """Generate and store (hash only) a password if none is configured or stored yet; return it
    once (None when one already exists or is configured)."""
    if configured(secret) or hash_file().is_file():
        return None
    password = secrets.token_urlsafe(12)
    _write_hash(password)
    return password


def announcement(password: str) -> str:
    """The lines that show a newly generated password once, in the terminal."""
    return (f"\n  Researcher password (shown once; only its scrypt hash is kept in {hash_file()}):\n"
            f"      {password}\n  Set {ENV} to choose your own.\n")


def verify(password: str, secret: str | None = None) -> bool:
    """Check a password against the configured one, else the stored hash (constant time)."""
    if not isinstance(password, str) or not password or len(password) > 1024:
        return False
    wanted = os.environ.get(ENV) or secret
    if wanted:
        return hmac.compare_digest(password.encode(), wanted.encode())
    try:
        record = json.loads(hash_file().read_text())
        salt, digest = base64.b64decode(record["salt"]), base64.b64decode(record["hash"])
    except (OSError, ValueError, KeyError):
        return False
    got = hashlib.scrypt(password.encode(), salt=salt, n=record["n"], r=record["r"], p=record["p"], dklen=len(digest))
    return hmac.compare_digest(got, digest)


SESSION_COOKIE = "convis_research"
SESSION_HOURS = 12


def _session_key() -> bytes:
    """Signing key of researcher sessions, derived from the master key kept outside the database
    (`study.keys`); changing the password does not end sessions, changing the key does."""
    from study.keys import master_key

    return hmac.new(master_key(), b"researcher-session", hashlib.sha256).digest()


def session_token(now: float | None = None, hours: float = SESSION_HOURS) -> str:
    """A signed researcher session ("<expiry>.<signature>") for a cookie, so a reload stays logged in."""
    expiry = int((time.time() if now is None else now) + hours * 3600)
    sig = hmac.new(_session_key(), str(expiry).encode(), hashlib.sha256).hexdigest()
    return f"{expiry}.{sig}"


def session_valid(token: str | None, now: float | None = None) -> bool:
    """True for an unexpired token signed with this installation's key."""
    if not isinstance(token, str) or len(token) > 200 or "." not in token:
        return False
    expiry, sig = token.split(".", 1)
    if not expiry.isdigit():
        return False
    want = hmac.new(_session_key(), expiry.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(sig, want) and int(expiry) > (time.time() if now is None else now)


@dataclass
class Throttle:
    """Per-client slow-down of wrong passwords: after k failures, wait `base * 2**(k-1)` seconds
    (at most `cap`) before the next attempt is even checked. In memory, per app process."""

    base: float = 1.0
    cap: float = 300.0
    _fails: dict[str, tuple[int, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_left(self, client: str, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            n, last = self._fails.get(client, (0, 0.0))
        if n == 0:
            return 0.0
        return max(0.0, last + min(self.cap, self.base * 2 ** (n - 1)) - now)

    def failed(self, client: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            n, _ = self._fails.get(client, (0, 0.0))
            self._fails[client] = (n + 1, now)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._fails.pop(client, None)
