"""Where a transformers model runs: ``"auto"`` picks CUDA, then Apple MPS, then the CPU, with bfloat16 on a
GPU and float32 on a CPU; every choice is logged."""

from __future__ import annotations

import logging

logger = logging.getLogger("guardsdk")


def pick_device(device: str = "auto") -> str:
    """``device`` as given, or for ``"auto"`` the best one present: ``cuda``, ``mps``, else ``cpu``."""
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def pick_dtype(dtype: str, device: str) -> str:
    """``dtype`` as given, or for ``"auto"`` bfloat16 on a GPU and float32 on a CPU."""
    if dtype != "auto":
        return dtype
    return "float32" if device == "cpu" else "bfloat16"


def placement(device: str = "auto", dtype: str = "auto", what: str = "model") -> tuple[str, str]:
    """The (device, dtype) a model runs on, logged."""
    chosen = pick_device(device)
    kind = pick_dtype(dtype, chosen)
    logger.info("guardsdk: %s on %s in %s (asked: device=%s, dtype=%s)", what, chosen, kind, device, dtype)
    return chosen, kind
