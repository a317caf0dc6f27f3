"""The HMAC key that keeps Prolific ids and client keys out of the database in readable form.

One master key lives outside the database: ``$CONVIS_PID_KEY`` (hex, at least 32 digits), else
the file ``<data dir>/secrets/pid_hmac.key``, created on first use with mode 0600. Per-study keys
are derived from it (HMAC of the purpose and the study slug), so the same Prolific id hashes
differently in every study.

What it protects: a copy of the database (or of an export) alone cannot be searched for a known
Prolific id, nor matched across studies; whoever also holds the key can test a guessed id, and
raw ids that are still stored (participants who finished, until `forget_prolific_ids`) are
readable anyway. Every app process on one database must use the same key (same data folder, or
the same ``$CONVIS_PID_KEY``); with a lost or changed key, people seen before can no longer be
recognised (re-entry checks and resumes by Prolific link stop matching).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
from pathlib import Path

from study.config import data_dir
from study.errors import StudyError

ENV = "CONVIS_PID_KEY"
_lock = threading.Lock()
_cache: dict[tuple[str, str], bytes] = {}


def key_file() -> Path:
    """Where the master key is kept when ``$CONVIS_PID_KEY`` is not set."""
    return data_dir() / "secrets" / "pid_hmac.key"


def _from_env(value: str) -> bytes:
    try:
        key = bytes.fromhex(value.strip())
    except ValueError:
        raise StudyError(f"{ENV} must be hexadecimal") from None
    if len(key) < 16:
        raise StudyError(f"{ENV} must hold at least 32 hex digits (16 bytes)")
    return key


def _from_file(path: Path) -> bytes:
    """Read the key file, creating it (0600, atomically: no process ever reads half a key)."""
    if not path.is_file():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_hex(32).encode() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # fails if another process created the key first: keep theirs
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return _from_env(path.read_text())


def master_key() -> bytes:
    """The master key (environment first, then the key file); cached per source."""
    source = (os.environ.get(ENV) or "", str(key_file()))
    with _lock:
        key = _cache.get(source)
        if key is None:
            key = _from_env(source[0]) if source[0] else _from_file(Path(source[1]))
            _cache[source] = key
        return key


def _derived(purpose: str, slug: str) -> bytes:
    return hmac.new(master_key(), f"convis-study/{purpose}/{slug}".encode(), hashlib.sha256).digest()


def pid_hash(slug: str, prolific_pid: str) -> str:
    """The stored form of a Prolific id in study `slug`: HMAC-SHA256(per-study key, PID)."""
    return hmac.new(_derived("pid", slug), prolific_pid.encode(), hashlib.sha256).hexdigest()


def client_hash(slug: str, client: str) -> str:
    """The stored form of a client key (e.g. an IP address) for rate limiting in study `slug`."""
    return hmac.new(_derived("client", slug), client.encode(), hashlib.sha256).hexdigest()
