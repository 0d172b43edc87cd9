"""What a recipe run records about itself: its inputs' hashes, the libraries it ran on, label counts, names."""

from __future__ import annotations

import hashlib
import os
import platform
from importlib import metadata

from guardsdk_trainer.data import Example

LIBRARIES = ("guardsdk", "torch", "transformers", "trl", "peft", "datasets", "accelerate", "llama_cpp_python")


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file, read a megabyte at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    """Python's version and each of :data:`LIBRARIES`' (or "not installed")."""
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def label_counts(examples: list[Example]) -> dict[str, int]:
    """How many examples carry each ``task=label``."""
    counts: dict[str, int] = {}
    for example in examples:
        for task, label in example.labels.items():
            if label:
                counts[f"{task}={label}"] = counts.get(f"{task}={label}", 0) + 1
    return counts


def slug(text: str) -> str:
    """``text`` as a file-name part: letters and digits, the rest dashes."""
    return "".join(c if c.isalnum() else "-" for c in text).strip("-").lower()


__all__ = ["LIBRARIES", "file_sha256", "label_counts", "library_versions", "slug"]
