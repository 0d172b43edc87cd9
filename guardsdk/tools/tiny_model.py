"""Tiny Llama models built offline, in seconds: for tests, demos and drafting.

Two tokenizers, both built offline:

- ``"llama3"``: the real Llama 3 tokenizer that GuardReasoner uses, read from the ``tokenizer.model``
  (tiktoken format) that the ``llama-models`` package ships, as a Hugging Face fast tokenizer.
- ``"spm"``: a small SentencePiece BPE (byte fallback, 4K pieces by default) trained on given texts. Its
  output layer is ~30x smaller than Llama 3's 128K vocabulary, which makes CPU training fast.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

#: Llama 3 special tokens, in id order from 128000 (as llama-models defines them).
_NAMED_SPECIALS = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>",
    "<|finetune_right_pad_id|>",
    "<|step_id|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eom_id|>",
    "<|eot_id|>",
    "<|python_tag|>",
    "<|image|>",
]
LLAMA3_SPECIALS = _NAMED_SPECIALS + [f"<|reserved_special_token_{2 + i}|>" for i in range(256 - len(_NAMED_SPECIALS))]
LLAMA3_BOS_ID = 128000
LLAMA3_STOP_IDS = [128001, 128008, 128009]


def llama3_tokenizer_model_path() -> Path:
    """Path of the Llama 3 ``tokenizer.model`` shipped by the ``llama-models`` package."""
    try:
        import llama_models
    except ImportError as exc:
        raise ImportError(
            "the Llama 3 tokenizer comes from the llama-models package: pip install llama-models"
        ) from exc
    return Path(llama_models.__file__).parent / "llama3" / "tokenizer.model"


def llama3_tokenizer() -> Any:
    """The Llama 3 tokenizer as a transformers fast tokenizer (BOS added, like GuardReasoner's)."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    backend = TikTokenConverter(
        vocab_file=str(llama3_tokenizer_model_path()), extra_special_tokens=LLAMA3_SPECIALS
    ).converted()
    backend.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single="<|begin_of_text|> $A",
                pair="<|begin_of_text|> $A <|begin_of_text|> $B",
                special_tokens=[("<|begin_of_text|>", LLAMA3_BOS_ID)],
            ),
        ]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>",
        pad_token="<|finetune_right_pad_id|>",
        model_max_length=131072,
    )


SPM_BOS_ID, SPM_EOS_ID = 1, 2


def build_spm_tokenizer(out_dir: str | os.PathLike[str], texts: Iterable[str], vocab_size: int = 4096) -> Any:
    """Train a SentencePiece BPE tokenizer on ``texts`` and save it (``tokenizer.model`` and HF files)."""
    import io
    import json

    import sentencepiece as spm
    from transformers import AutoTokenizer

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(list(texts)),
        model_writer=model,
        vocab_size=vocab_size,
        model_type="bpe",
        byte_fallback=True,
        split_digits=True,
        character_coverage=0.9995,
        allow_whitespace_only_pieces=True,
        remove_extra_whitespaces=False,
        normalization_rule_name="identity",
        unk_id=0,
        bos_id=SPM_BOS_ID,
        eos_id=SPM_EOS_ID,
        pad_id=-1,
        max_sentence_length=1 << 16,
        num_threads=os.cpu_count() or 1,
        minloglevel=2,
        hard_vocab_limit=False,  # a small corpus gets a smaller vocabulary
    )
    (out / "tokenizer.model").write_bytes(model.getvalue())
    settings = {"tokenizer_class": "LlamaTokenizer", "add_bos_token": True, "add_eos_token": False, "legacy": False,
                "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "</s>"}  # fmt: skip
    (out / "tokenizer_config.json").write_text(json.dumps(settings), encoding="utf-8")
    tokenizer = AutoTokenizer.from_pretrained(out)
    tokenizer.save_pretrained(out)
    return tokenizer


def tiny_llama_config(architecture: str = "llama", **overrides: Any) -> Any:
    """A Llama (or Mistral: ``architecture="mistral"``) config of toy size with the Llama 3 vocabulary."""
    from transformers import LlamaConfig, MistralConfig

    settings: dict[str, Any] = {
        "vocab_size": 128256,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 8192,
        "rope_theta": 500000.0,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": True,
        "bos_token_id": LLAMA3_BOS_ID,
        "eos_token_id": LLAMA3_STOP_IDS,
        "initializer_range": 0.2,
    }
    settings.update(overrides)
    if architecture == "mistral":  # WildGuard's architecture
        settings.pop("tie_word_embeddings")
        return MistralConfig(sliding_window=None, **settings)
    return LlamaConfig(**settings)


def build_tiny_llama(
    out_dir: str | os.PathLike[str],
    *,
    seed: int = 0,
    tokenizer: str = "llama3",
    texts: Iterable[str] = (),
    vocab_size: int = 4096,
    architecture: str = "llama",
    **config_overrides: Any,
) -> Path:
    """Save a random tiny Llama (or ``architecture="mistral"``) with a ``"llama3"`` or ``"spm"`` tokenizer
    (trained on ``texts``) as a HF folder."""
    import torch
    from transformers import GenerationConfig, LlamaForCausalLM, MistralForCausalLM

    out = Path(out_dir)
    if tokenizer == "llama3":
        llama3_tokenizer().save_pretrained(out)
        bos, stops = LLAMA3_BOS_ID, LLAMA3_STOP_IDS
    elif tokenizer == "spm":
        from guardsdk.families.guardreasoner.template import INSTRUCTION

        spm_tokenizer = build_spm_tokenizer(out, [INSTRUCTION, *texts], vocab_size)
        bos, stops = SPM_BOS_ID, [SPM_EOS_ID]
        config_overrides = {
            "vocab_size": len(spm_tokenizer),
            "bos_token_id": bos,
            "eos_token_id": stops,
            **config_overrides,
        }
    else:
        raise ValueError(f"unknown tokenizer {tokenizer!r}: 'llama3' or 'spm'")
    torch.manual_seed(seed)
    model_class = MistralForCausalLM if architecture == "mistral" else LlamaForCausalLM
    model = model_class(tiny_llama_config(architecture, **config_overrides))
    # Round weights to float16 precision, so an F16 GGUF holds exactly the same weights.
    model = model.to(torch.float16).to(torch.float32)
    model.generation_config = GenerationConfig(bos_token_id=bos, eos_token_id=stops, do_sample=False)
    model.save_pretrained(out)
    return out
