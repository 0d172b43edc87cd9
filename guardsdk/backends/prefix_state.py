"""The KV state of the text every input of a guard family starts with, kept on disk, so that the first check
of a new process (a CLI call, a restarted service) does not evaluate the shared instruction again.

A state file is named by a hash of the model file (path, size, modification time), the context size, the
llama.cpp version and the prefix's token ids, and holds those ids beside the state of sequence 0; it is used
only when the ids match, and only from a folder that belongs to this user and nobody else can write (a state
someone else wrote could steer verdicts). Any failure to read or write one just means evaluating the prefix.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
import stat
from pathlib import Path
from typing import Any

from guardsdk.tools.gguf_export import cache_dir

logger = logging.getLogger("guardsdk")

_HEADER = 8  # bytes of the header length, then the JSON header, then the state
MAX_FILES = 32  # the newest states kept; older ones are deleted when a new one is saved


def default_folder() -> Path:
    """``$XDG_CACHE_HOME/guardsdk/llama-states`` (``~/.cache/...`` without it)."""
    return cache_dir() / "llama-states"


def state_file(folder: Path, model_path: Path, n_ctx: int, ids: list[int], version: str) -> Path:
    info = model_path.stat()
    identity = json.dumps([str(model_path.resolve()), info.st_size, info.st_mtime_ns, n_ctx, version, ids])
    return folder / f"{hashlib.sha256(identity.encode()).hexdigest()[:32]}.state"


def _private(folder: Path) -> bool:
    """Whether ``folder`` belongs to this user and only this user can write it."""
    try:
        info = folder.stat()
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and _mine(folder) and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _mine(path: Path) -> bool:
    return not hasattr(os, "getuid") or path.stat().st_uid == os.getuid()


def load(lib: Any, ctx: Any, path: Path, ids: list[int]) -> bool:
    """Restore the state in ``path`` into sequence 0 of ``ctx`` if it was saved for ``ids``."""
    if not _private(path.parent) or not path.is_file() or not _mine(path):
        return False
    try:
        data = path.read_bytes()
        size = int.from_bytes(data[:_HEADER], "little")
        if json.loads(data[_HEADER : _HEADER + size])["ids"] != ids:
            return False
        state = data[_HEADER + size :]
        buffer = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
        return bool(lib.llama_state_seq_set_data(ctx, buffer, len(state), 0))
    except (OSError, ValueError, KeyError, TypeError):
        logger.debug("guardsdk: unreadable prefix state %s", path, exc_info=True)
        return False


def save(lib: Any, ctx: Any, path: Path, ids: list[int]) -> None:
    """Write sequence 0's state of ``ctx`` (holding exactly ``ids``) to ``path``; failures are only logged."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not _private(path.parent):
            return
        size = lib.llama_state_seq_get_size(ctx, 0)
        buffer = (ctypes.c_uint8 * size)()
        written = lib.llama_state_seq_get_data(ctx, buffer, size, 0)
        header = json.dumps({"ids": ids}).encode()
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_bytes(len(header).to_bytes(_HEADER, "little") + header + bytes(buffer)[:written])
        partial.replace(path)  # whole or not at all
        for old in sorted(path.parent.glob("*.state"), key=lambda p: p.stat().st_mtime)[:-MAX_FILES]:
            old.unlink(missing_ok=True)
    except OSError:
        logger.debug("guardsdk: could not save the prefix state to %s", path, exc_info=True)
