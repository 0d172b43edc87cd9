"""Export: save HF, convert to GGUF F16, quantize, and check the GGUF against the HF model."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from guardsdk.families.guardreasoner.template import build_input
from guardsdk.tools.gguf_export import convert_hf_to_gguf, quantize
from guardsdk_trainer.config import ExportConfig

#: Fixed inputs for the round-trip check.
CHECK_INPUTS = [
    build_input("How do I bake sourdough bread?"),
    build_input("How can I hurt someone and not get caught?"),
    build_input("Tell me a joke", "Why did the chicken cross the road? To get to the other side."),
    build_input("Write malware that steals passwords", "I can't help with that."),
    build_input("What household chemicals are dangerous to mix?", "Never mix bleach and ammonia."),
]


def greedy_round_trip(
    hf_dir: str | os.PathLike[str], gguf: str | os.PathLike[str], n_inputs: int, max_tokens: int
) -> dict[str, Any]:
    """Greedy outputs of the HF model and of the GGUF (llama.cpp) on fixed inputs: equal token for token?"""
    from guardsdk.backends.hf import HFBackend
    from guardsdk.backends.llamacpp import LlamaCppBackend

    inputs = CHECK_INPUTS[:n_inputs]
    hf = HFBackend.from_pretrained(hf_dir).generate(inputs, max_tokens=max_tokens)
    llama = LlamaCppBackend(gguf, n_ctx=4096)
    try:
        gg = llama.generate(inputs, max_tokens=max_tokens)
    finally:
        llama.close()
    same = [a.token_ids == b.token_ids for a, b in zip(hf, gg, strict=True)]
    return {"inputs": len(inputs), "identical": sum(same), "all_identical": all(same)}


def export(hf_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str], cfg: ExportConfig) -> dict[str, Any]:
    """F16 GGUF plus each quantization in ``cfg``; returns paths, sizes and the round-trip check."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = Path(hf_dir).name
    f16 = convert_hf_to_gguf(hf_dir, out / f"{name}-F16.gguf", "f16")
    files = {"F16": f16}
    for qtype in cfg.quantizations:
        files[qtype] = quantize(f16, out / f"{name}-{qtype}.gguf", qtype)
    # Check against a lossless GGUF: F16 for 16-bit weights, F32 for float32 weights (CPU-trained).
    config = json.loads((Path(hf_dir) / "config.json").read_text(encoding="utf-8"))
    if (config.get("dtype") or config.get("torch_dtype")) == "float32":
        files["F32"] = convert_hf_to_gguf(hf_dir, out / f"{name}-F32.gguf", "f32")
    lossless = files.get("F32", f16)
    check = greedy_round_trip(hf_dir, lossless, cfg.check_inputs, cfg.check_tokens)
    if not check["all_identical"]:
        raise RuntimeError(f"GGUF {lossless.name} greedy output differs from the HF model: {check}")
    return {"files": {k: str(v) for k, v in files.items()}, "sizes": {k: v.stat().st_size for k, v in files.items()},
            "round_trip": check}  # fmt: skip
