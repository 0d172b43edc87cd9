"""Bearer API keys: loaded from a file or an environment variable, compared in constant time."""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import re
from pathlib import Path

logger = logging.getLogger("guardsdk.service")

#: The environment variable that may hold the service's API keys (comma-separated).
KEYS_ENV = "GUARDSDK_API_KEYS"
#: The shortest API key a service beyond loopback accepts (a random 32-character key: ``openssl rand -hex 16``).
MIN_KEY_CHARS = 32
#: Placeholder keys from docs and examples (lowercase, letters and digits only): never a key beyond loopback.
_PLACEHOLDERS = re.compile(r"changeme|replaceme|replacethis|yourapikey|yourkey|yoursecret|placeholder|insertyour|"
                           r"example|dummy|redacted|generateme|setme|fillme")  # fmt: skip


def load_api_keys(path: str | os.PathLike[str] | None = None, env: str = KEYS_ENV) -> frozenset[str]:
    """Keys from ``path`` (one per line; blank lines and ``#`` comments skipped) and from ``$env``."""
    keys: set[str] = set()
    if path is not None:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                keys.add(line)
    keys.update(key.strip() for key in os.environ.get(env, "").split(",") if key.strip())
    return frozenset(keys)


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def weak_key(key: str) -> str | None:
    """Why ``key`` is no key to guard a service beyond loopback with (a placeholder, too short), or None."""
    plain = re.sub(r"[^a-z0-9]", "", key.lower())
    if _PLACEHOLDERS.match(plain) or len(set(plain)) < 4:
        return "a placeholder"
    if len(key) < MIN_KEY_CHARS:
        return f"shorter than {MIN_KEY_CHARS} characters"
    return None


def refuse_open_service(host: str, keys: frozenset[str]) -> None:
    """Raise ``ValueError`` for a service on a non-loopback address without keys, or with a key that is a known
    placeholder (``change-me``, ``replace-me...``) or shorter than :data:`MIN_KEY_CHARS` (the key is not named)."""
    if is_loopback(host):
        return
    if not keys:
        raise ValueError(f"refusing to serve on {host} without API keys: give --api-keys-file or ${KEYS_ENV}")
    weak = sorted({why for why in map(weak_key, keys) if why})
    if weak:
        raise ValueError(f"refusing to serve on {host} with an API key that is {' or '.join(weak)}: use random keys "
                         f"of {MIN_KEY_CHARS}+ characters (e.g. openssl rand -hex 32)")  # fmt: skip


def check_open_service(host: str, keys: frozenset[str]) -> None:
    """Refuse a service without keys on a non-loopback address (:func:`refuse_open_service`); warn on loopback."""
    refuse_open_service(host, keys)
    if not keys:
        logger.warning("guardsdk service on %s has no API keys: any local process can use it", host)


def authorized(header: str | None, keys: frozenset[str]) -> bool:
    """Whether an ``Authorization`` header carries one of ``keys`` (every key compared, in constant time)."""
    if not keys:
        return True
    scheme, _, token = (header or "").partition(" ")
    token = token.strip()
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(token.encode("utf-8", "surrogatepass"), key.encode("utf-8"))
    return matched and scheme.lower() == "bearer"
