"""Sampling n outputs per training input from an R-SFT model: vLLM (GPU), transformers, or llama.cpp (CPU)."""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from guardsdk.backends.devices import placement
from guardsdk_trainer.config import SampleConfig
from guardsdk_trainer.data import Example

logger = logging.getLogger("guardsdk_trainer")


def pick_engine(requested: str) -> str:
    """``auto`` means vLLM when it is installed (GPU machines), else transformers."""
    if requested != "auto":
        return requested
    return "vllm" if importlib.util.find_spec("vllm") is not None else "hf"


def sample_hf(
    model_dir: str | os.PathLike[str], examples: Sequence[Example], cfg: SampleConfig, seed: int = 0
) -> dict[str, list[str]]:
    """``n`` samples per input with transformers (left-padded batches, temperature / top-p sampling)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), padding_side="left")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    device, dtype = placement(cfg.device, cfg.dtype, what=f"sampling model {Path(model_dir).name}")
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=getattr(torch, dtype)).to(device).eval()
    torch.manual_seed(seed)
    eos = model.generation_config.eos_token_id
    out: dict[str, list[str]] = {}
    for start in range(0, len(examples), cfg.batch_size):
        chunk = examples[start : start + cfg.batch_size]
        encoded = tokenizer(
            [e.model_input for e in chunk], return_tensors="pt", padding=True, split_special_tokens=True
        ).to(device)
        with torch.inference_mode():
            generated = model.generate(
                **encoded,
                do_sample=True,
                temperature=cfg.temperature,
                top_p=cfg.top_p,
                top_k=0,
                num_return_sequences=cfg.n,
                max_new_tokens=cfg.max_new_tokens,
                eos_token_id=eos,
                pad_token_id=tokenizer.pad_token_id,
            )
        texts = tokenizer.batch_decode(generated[:, encoded["input_ids"].shape[1] :], skip_special_tokens=True)
        for i, example in enumerate(chunk):
            out[example.id] = texts[i * cfg.n : (i + 1) * cfg.n]
        logger.debug("sampled %d of %d inputs (x%d) from %s", len(out), len(examples), cfg.n, Path(model_dir).name)
    return out


def sample_vllm(
    model_dir: str | os.PathLike[str], examples: Sequence[Example], cfg: SampleConfig, seed: int = 0
) -> dict[str, list[str]]:  # pragma: no cover - GPU only
    """``n`` samples per input with vLLM."""
    from vllm import LLM, SamplingParams

    llm = LLM(model=str(model_dir), seed=seed)
    params = SamplingParams(n=cfg.n, temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_new_tokens)
    results = llm.generate([e.model_input for e in examples], params)
    return {e.id: [o.text for o in r.outputs] for e, r in zip(examples, results, strict=True)}


class LlamaCppSession:
    """One model's lossless (F32) GGUF open in llama.cpp, kept open while the same model is asked for again
    (sampling goes chunk by chunk: converting once per model, not once per chunk)."""

    current: LlamaCppSession | None = None

    def __init__(self, model_dir: Path, context_length: int, threads: int | None = None) -> None:
        import tempfile

        import llama_cpp

        from guardsdk.tools.gguf_export import convert_hf_to_gguf

        self.key = (model_dir.resolve(), (model_dir / "model.safetensors").stat().st_mtime_ns, context_length, threads)
        self.work = tempfile.TemporaryDirectory(prefix="guardsdk-sample-")
        gguf = convert_hf_to_gguf(model_dir, Path(self.work.name) / "model-f32.gguf", "f32")
        threads = threads or os.cpu_count() or 1
        self.llm = llama_cpp.Llama(str(gguf), n_ctx=context_length, n_threads=threads, n_threads_batch=threads,
                                   verbose=False)  # fmt: skip

    @classmethod
    def open(
        cls, model_dir: str | os.PathLike[str], context_length: int, threads: int | None = None
    ) -> LlamaCppSession:
        """The open session of ``model_dir``, or a new one (closing the previous model's)."""
        folder = Path(model_dir)
        key = (folder.resolve(), (folder / "model.safetensors").stat().st_mtime_ns, context_length, threads)
        if cls.current is None or cls.current.key != key:
            cls.close_current()
            cls.current = cls(folder, context_length, threads)
        return cls.current

    @classmethod
    def close_current(cls) -> None:
        if cls.current is not None:
            cls.current.llm.close()
            cls.current.work.cleanup()
            cls.current = None

    def complete(self, text: str, max_tokens: int, temperature: float, top_p: float, seed: int) -> str | None:
        """One completion (greedy at temperature 0); None when the input is longer than the context."""
        try:
            completion = self.llm.create_completion(text, max_tokens=max_tokens, temperature=temperature,
                                                    top_p=top_p, top_k=0, seed=seed)  # fmt: skip
        except ValueError:
            return None
        return completion["choices"][0]["text"]


def sample_llamacpp(
    model_dir: str | os.PathLike[str], examples: Sequence[Example], cfg: SampleConfig, seed: int = 0
) -> dict[str, list[str]]:
    """``n`` samples per input with llama.cpp on a lossless (F32) GGUF of the model: one sequence at a time,
    yet much faster than batched transformers for a small model on a CPU. An input too long for the context
    gets no samples."""
    session = LlamaCppSession.open(model_dir, cfg.context_length, cfg.threads)
    out: dict[str, list[str]] = {}
    for index, example in enumerate(examples):
        texts = []
        for k in range(cfg.n):
            text = session.complete(example.model_input, cfg.max_new_tokens, cfg.temperature, cfg.top_p,
                                    seed * 1_000_003 + index * cfg.n + k)  # fmt: skip
            if text is None:  # longer than the context
                break
            texts.append(text)
        out[example.id] = texts
    return out


def sample(
    model_dir: str | os.PathLike[str], examples: Sequence[Example], cfg: SampleConfig, seed: int = 0
) -> dict[str, list[str]]:
    """``{example id: [n sampled outputs]}`` from one model."""
    engine = pick_engine(cfg.engine)
    if engine == "vllm":
        return sample_vllm(model_dir, examples, cfg, seed)
    if engine == "hf":
        return sample_hf(model_dir, examples, cfg, seed)
    if engine == "llamacpp":
        return sample_llamacpp(model_dir, examples, cfg, seed)
    raise ValueError(f"unknown sampling engine {engine!r}")
