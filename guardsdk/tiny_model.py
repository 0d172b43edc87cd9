"""Tiny Llama models built offline, in seconds: for tests, demos and drafting.

The tokenizer is the real Llama 3 tokenizer that GuardReasoner uses, read from the
``tokenizer.model`` (tiktoken format) that the ``llama-models`` package ships and converted to a
Hugging Face fast tokenizer; nothing is downloaded.
"""

from __future__ import annotations

import os
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


def tiny_llama_config(**overrides: Any) -> Any:
    """A Llama config of toy size with the Llama 3 vocabulary."""
    from transformers import LlamaConfig

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
    return LlamaConfig(**settings)


def build_tiny_llama(out_dir: str | os.PathLike[str], *, seed: int = 0, **config_overrides: Any) -> Path:
    """Save a random tiny Llama with the Llama 3 tokenizer as a Hugging Face folder."""
    import torch
    from transformers import GenerationConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    model = LlamaForCausalLM(tiny_llama_config(**config_overrides))
    # Round weights to float16 precision, so an F16 GGUF holds exactly the same weights.
    model = model.to(torch.float16).to(torch.float32)
    model.generation_config = GenerationConfig(
        bos_token_id=LLAMA3_BOS_ID, eos_token_id=LLAMA3_STOP_IDS, do_sample=False
    )
    out = Path(out_dir)
    model.save_pretrained(out)
    llama3_tokenizer().save_pretrained(out)
    return out
