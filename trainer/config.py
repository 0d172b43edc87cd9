"""Training configs as dataclasses, loadable from YAML (one file drives the whole recipe)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guardsdk_trainer.classifier_config import ClassifierConfig


@dataclass
class DataConfig:
    """Where training rows come from and what must never be trained on."""

    pool: list[str] = field(default_factory=list)  # JSONL files in the schema of shared/data/train/pool.jsonl
    compact_traces: bool = False  # keep each task's first reasoning step and the answers (toy models learn it fast)
    reasoning: list[str] = field(default_factory=list)  # GuardReasonerTrain-style files or HF dataset ids
    exclude: list[str] = field(default_factory=list)  # benchmark files whose prompts are never trained on
    max_pool_rows: int | None = None
    eval_fraction: float = 0.02
    seed: int = 0


@dataclass
class SynthConfig:
    """Reasoning synthesis with a teacher LLM behind an OpenAI-compatible endpoint."""

    base_url: str = "https://api.openai.com/v1"
    model: str = "gpt-4o"
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 16
    max_retries: int = 5
    max_tokens: int = 2048
    temperature: float = 0.0
    timeout_s: float = 120.0
    # Offline, no teacher (toy configs): this many labelled rows get a one-step trace written from their gold
    # labels (guardsdk_trainer.template_teacher): it teaches the format; the bootstrap stage traces the rest.
    template_rows: int = 0


@dataclass
class SFTStageConfig:
    """Reasoning SFT (R-SFT): trl's SFTTrainer on prompt/completion pairs, loss on the completion."""

    base_model: str = "meta-llama/Llama-3.2-1B"  # or "tiny-random" / "tiny-random-spm" (built offline)
    tiny_model: dict[str, Any] = field(default_factory=dict)  # LlamaConfig overrides for a tiny-random base
    learning_rate: float = 5e-5
    epochs: float = 3.0
    per_device_batch_size: int = 4
    gradient_accumulation_steps: int = 96  # x 1 GPU x 4 = effective 384 (the paper's)
    lr_scheduler_type: str = "cosine"
    warmup_ratio: float = 0.0
    max_length: int = 2048
    bf16: bool = True
    gradient_checkpointing: bool = True
    group_by_length: bool = False  # batches of similar length: much less padding on a CPU
    lora_rank: int | None = None  # None: full fine-tuning
    lora_alpha: int = 32
    max_steps: int = -1
    logging_steps: int = 10
    save_steps: int = 0  # > 0: a checkpoint every N steps, and a rerun resumes from the last one
    threads: int | None = None  # CPU threads for torch while training (None: torch's default)
    seed: int = 0


@dataclass
class SampleConfig:
    """Sampling n outputs per training input from each R-SFT model."""

    n: int = 4
    temperature: float = 0.7
    top_p: float = 0.95
    max_new_tokens: int = 1024
    max_inputs: int | None = None
    engine: str = "auto"  # auto (vLLM if installed, else hf), vllm, hf, llamacpp (fastest for small models on a CPU)
    batch_size: int = 8  # hf
    device: str = "auto"  # hf: cuda, then mps, else cpu (logged)
    dtype: str = "auto"  # hf: bfloat16 on a GPU, float32 on a CPU
    context_length: int = 4096  # llamacpp; longer inputs get no samples
    leave_one_out_sources: list[str] = field(default_factory=list)  # diversity: one extra model per source left out
    # Sampling goes on, chunk_inputs inputs at a time through every model, until target_pairs hard pairs are
    # mined, or max_inputs inputs (None: every labelled training row) or time_budget_s seconds are spent.
    target_pairs: int | None = 64  # None: no target, every input within the budgets (one pass, the paper's)
    chunk_inputs: int = 16
    time_budget_s: float | None = None
    threads: int | None = None  # llamacpp: CPU threads (None: all cores; 1 is fastest for a toy model on a busy CPU)


@dataclass
class BootstrapConfig:
    """Rejection-sampling rounds after R-SFT: generate with the current model on labelled rows that have
    no trace, keep outputs whose answers match the labels, and fine-tune the current model on the round's
    new traces plus ``replay`` times as many earlier ones (each round is saved, so a rerun resumes)."""

    rounds: int = 0
    inputs_per_round: int = 200
    n: int = 2
    temperature: float = 0.7
    top_p: float = 0.95
    max_new_tokens: int = 1024
    replay: float = 1.0
    epochs: float = 1.0
    learning_rate: float | None = None  # None: R-SFT's


@dataclass
class MineConfig:
    """Hard-sample mining: ``held_out_fraction`` of the mined pairs (by hash of the input) are kept out of
    HS-DPO to measure its preference accuracy before and after."""

    held_out_fraction: float = 0.2


@dataclass
class EvaluateConfig:
    """The ``evaluate`` stage: held-out F1 per task of the R-SFT and HS-DPO models (greedy) beside the
    no-reasoning TF-IDF baseline trained on the same rows, and preference accuracy on held-out pairs."""

    max_inputs: int | None = 200  # of the eval split
    max_new_tokens: int = 384
    batch_size: int = 8


@dataclass
class DPOStageConfig:
    """Hard-sample DPO: weighted sigmoid DPO plus the SFT term on the chosen output."""

    learning_rate: float = 5e-6
    epochs: float = 2.0
    beta: float = 0.01
    sft_weight: float = 2.0  # the paper's pref_ftx
    per_device_batch_size: int = 2
    gradient_accumulation_steps: int = 64
    lr_scheduler_type: str = "cosine"
    max_length: int = 2048
    bf16: bool = True
    gradient_checkpointing: bool = True
    max_steps: int = -1
    logging_steps: int = 10
    save_steps: int = 0  # > 0: a checkpoint every N steps, and a rerun resumes from the last one
    threads: int | None = None  # CPU threads for torch while training (None: torch's default)
    seed: int = 0


@dataclass
class ExportConfig:
    """HF → GGUF export and quantization."""

    quantizations: list[str] = field(default_factory=lambda: ["Q8_0", "Q4_K_M"])
    check_inputs: int = 4  # greedy F16 GGUF vs HF on this many fixed inputs
    check_tokens: int = 32


@dataclass
class RecipeConfig:
    """The whole synthesis → R-SFT → bootstrap → sampling → mining → HS-DPO → export pipeline."""

    output_dir: str = "runs/recipe"
    data: DataConfig = field(default_factory=DataConfig)
    synth: SynthConfig = field(default_factory=SynthConfig)
    rsft: SFTStageConfig = field(default_factory=SFTStageConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)
    mine: MineConfig = field(default_factory=MineConfig)
    hsdpo: DPOStageConfig = field(default_factory=DPOStageConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    stages: list[str] = field(
        default_factory=lambda: ["synth", "rsft", "bootstrap", "sample", "mine", "hsdpo", "evaluate", "export"]
    )


_SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "synth": SynthConfig,
    "rsft": SFTStageConfig,
    "sample": SampleConfig,
    "bootstrap": BootstrapConfig,
    "mine": MineConfig,
    "hsdpo": DPOStageConfig,
    "evaluate": EvaluateConfig,
    "export": ExportConfig,
    "classifier": ClassifierConfig,
}


def _build(cls: type, values: dict[str, Any], prefix: str = "") -> Any:
    import difflib

    if not isinstance(values, dict):
        raise ValueError(f"{prefix.rstrip('.') or 'the config'} must be a mapping of keys to values")
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(str(name), known, n=1)
            hints.append(f"{prefix}{name}" + (f" (did you mean {prefix}{close[0]}?)" if close else ""))
        raise ValueError(f"unknown key{'s' if len(hints) > 1 else ''} {', '.join(hints)}")
    kwargs = {}
    for name, value in values.items():
        nested = _SECTIONS.get(name) if cls is RecipeConfig else None
        kwargs[name] = _build(nested, value or {}, f"{name}.") if nested else value
    return cls(**kwargs)


def load_config(path: str | os.PathLike[str]) -> RecipeConfig:
    """Read a recipe config from YAML; relative data paths resolve against the config's folder (a
    ``data.reasoning`` entry that is not a ``.json``/``.jsonl`` path and is no file there is a dataset id)."""
    import yaml

    path = Path(path)
    config = _build(RecipeConfig, yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    base = path.resolve().parent

    def resolve(p: str) -> str:
        return p if os.path.isabs(p) else str((base / p).resolve())

    def local(p: str) -> bool:
        return str(p).endswith((".json", ".jsonl")) or (base / p).exists()

    config.data.pool = [resolve(p) for p in config.data.pool]
    config.data.reasoning = [resolve(p) if local(p) else p for p in config.data.reasoning]
    config.data.exclude = [resolve(p) for p in config.data.exclude]
    return config


def to_dict(config: Any) -> dict[str, Any]:
    """A plain dict of a config (for manifests)."""
    return dataclasses.asdict(config)


def trainer_settings(output_dir: str | os.PathLike[str], cfg: SFTStageConfig | DPOStageConfig) -> dict[str, Any]:
    """The transformers/trl training arguments that R-SFT and HS-DPO configs share."""
    import torch

    return {
        "output_dir": str(output_dir),
        "learning_rate": cfg.learning_rate,
        "num_train_epochs": cfg.epochs,
        "max_steps": cfg.max_steps,
        "per_device_train_batch_size": cfg.per_device_batch_size,
        "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
        "lr_scheduler_type": cfg.lr_scheduler_type,
        "max_length": cfg.max_length,
        "bf16": cfg.bf16,
        "activation_checkpointing": cfg.gradient_checkpointing,  # transformers 5's name (the old one warns)
        "dataloader_pin_memory": torch.cuda.is_available(),  # pinned memory needs an accelerator (a warning on a CPU)
        "logging_steps": cfg.logging_steps,
        "save_strategy": "steps" if cfg.save_steps else "no",
        "save_steps": cfg.save_steps or 500,
        "save_total_limit": 1,
        "report_to": [],
        "seed": cfg.seed,
    }
