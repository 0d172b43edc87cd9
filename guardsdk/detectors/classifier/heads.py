"""The classifier's task heads: a small MLP per task over sentence embeddings, with Platt calibration.

A head maps an embedding to a logit; its calibration (``a * logit + b``, fitted on a held-out pool split)
maps that logit to a probability. Heads are saved as one ``heads.safetensors`` (every head's tensors,
prefixed by task) beside a ``classifier.json`` that says what they were trained on and how.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

HEADS_FILE = "heads.safetensors"
MULTILINGUAL_FILE = "multilingual.safetensors"
CONFIG_FILE = "classifier.json"
#: What a head reads (``HeadsConfig.inputs``): a text of one role, or ``"pair"``: the response, each of its parts
#: beside the prompt's embedding (a reply is judged with the question it answers).
PAIR = "pair"


def roles_read(reads: str) -> tuple[str, ...]:
    """The roles a head that reads ``reads`` sees: the role itself, or for :data:`PAIR` both."""
    return ("prompt", "response") if reads == PAIR else (reads,)


class TaskHead(nn.Module):
    """Embedding → hidden (GELU) → one logit; ``calibration`` holds Platt's (a, b)."""

    def __init__(self, dimension: int, hidden: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dimension, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, 1))
        self.register_buffer("calibration", torch.tensor([1.0, 0.0]))

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Uncalibrated logits, one per row."""
        return self.net(embeddings).squeeze(-1)

    def probability(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Calibrated probabilities of the task's positive label."""
        a, b = self.calibration
        return torch.sigmoid(a * self(embeddings) + b)


@dataclass
class HeadsConfig:
    """What a set of heads is: its encoder, its tasks, and where its training came from."""

    encoder: str
    encoder_package: str
    dimension: int
    hidden: int
    #: Per task, what the head reads: ``"prompt"``, ``"response"`` or ``"pair"`` (:data:`PAIR`).
    inputs: dict[str, str]
    threshold: float = 0.5
    #: Roles (``"prompt"``, ``"response"``) whose sentences are mean-pooled from the whole text's encoding
    #: rather than encoded alone (heads without the key: every sentence encoded alone).
    pooled_sentences: list[str] = field(default_factory=list)
    #: Tasks whose heads read whole texts (or windows) only, never a sentence on its own: a refusal is said of
    #: a whole reply (heads without the key: every head reads sentences too).
    whole_text_tasks: list[str] = field(default_factory=list)
    #: Roles whose clauses are also read alone (run-on text; every sentence of a text over one window): a request
    #: cannot hide among benign clauses. A role left out is read whole and in sentences only (heads without the key:
    #: both roles).
    clause_roles: list[str] = field(default_factory=lambda: ["prompt", "response"])
    training: dict[str, Any] = field(default_factory=dict)  # sources, row counts, held-out metrics
    #: Heads for the languages MiniLM cannot read, over USE multilingual v3 (``multilingual.safetensors``): its
    #: encoder, package, dimension, languages, tasks and training (empty: none, such text stays undecided).
    multilingual: dict[str, Any] = field(default_factory=dict)


def save_heads(folder: str | os.PathLike[str], heads: dict[str, TaskHead], config: HeadsConfig,
               multilingual: dict[str, TaskHead] | None = None) -> Path:  # fmt: skip
    """Write ``heads.safetensors`` and ``classifier.json`` into ``folder``, and ``multilingual`` heads, if any, into
    ``multilingual.safetensors`` (without them the config records none: a copy of a config never names heads its
    folder lacks)."""
    from safetensors.torch import save

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for file, stored in ((HEADS_FILE, heads), (MULTILINGUAL_FILE, multilingual or {})):
        tensors = {f"{task}.{name}": _stored(name, t) for task, head in stored.items()
                   for name, t in head.state_dict().items()}  # fmt: skip
        if tensors:
            (out / file).write_bytes(save(tensors))  # as any file is written (save_file's would be 0600)
    written = asdict(config) | ({} if multilingual else {"multilingual": {}})
    (out / CONFIG_FILE).write_text(json.dumps(written, indent=1) + "\n", encoding="utf-8")
    return out


def _stored(name: str, tensor: torch.Tensor) -> torch.Tensor:
    """Weights in float16 (half the size; scores move by < 1e-3), the calibration in float32."""
    return tensor.detach().to(torch.float32 if name == "calibration" else torch.float16).contiguous()


def load_heads(folder: str | os.PathLike[str]) -> tuple[dict[str, TaskHead], HeadsConfig]:
    """The heads and config saved by :func:`save_heads`, ready for inference."""
    folder = Path(folder)
    config = HeadsConfig(**json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8")))
    dimensions = {task: config.dimension * len(roles_read(reads)) for task, reads in config.inputs.items()}
    return _load(folder / HEADS_FILE, dimensions, config.hidden), config


def load_multilingual_heads(folder: str | os.PathLike[str], config: HeadsConfig) -> dict[str, TaskHead]:
    """The multilingual heads :func:`save_heads` wrote beside ``config`` (none when it records none)."""
    tasks, dimension = config.multilingual.get("tasks", []), config.multilingual.get("dimension", 0)
    return _load(Path(folder) / MULTILINGUAL_FILE, dict.fromkeys(tasks, dimension), config.hidden) if tasks else {}


def _load(file: Path, dimensions: dict[str, int], hidden: int) -> dict[str, TaskHead]:
    from safetensors.torch import load_file

    tensors = load_file(file)
    heads = {}
    for task, dimension in dimensions.items():
        head = TaskHead(dimension, hidden)
        prefix = f"{task}."
        head.load_state_dict({k[len(prefix) :]: v.float() for k, v in tensors.items() if k.startswith(prefix)})
        heads[task] = head.eval()
    return heads
