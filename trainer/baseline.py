"""A non-reasoning baseline: TF-IDF + logistic regression per task (scikit-learn).

Trained on the same labelled rows as a guard, it writes GuardReasoner-format predictions (an
``Answers:`` block per item), so ``guardsdk eval --rescore`` scores it exactly like a model.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from guardsdk.eval.benchmarks import BenchmarkSpec, load_items
from guardsdk.eval.evaluation import PREDICTIONS_FILE
from guardsdk.families import get_family
from guardsdk.verdict import PROMPT_HARM, TASKS
from guardsdk_trainer.data import Example


def features(task: str, prompt: str, response: str | None) -> str:
    """The text a task's classifier reads: the prompt, or the prompt and the response."""
    return prompt if task == PROMPT_HARM else f"{prompt}\n[RESPONSE]\n{response or ''}"


class TfidfBaseline:
    """One TF-IDF (word 1-2 grams) + logistic regression classifier per task with enough labels."""

    def __init__(self, max_features: int = 200_000, seed: int = 0) -> None:
        self.max_features = max_features
        self.seed = seed
        self.models: dict[str, Any] = {}
        self.train_sizes: dict[str, int] = {}

    def fit(self, examples: Sequence[Example]) -> TfidfBaseline:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        for task in TASKS:
            rows = [e for e in examples if e.labels.get(task) and (task == PROMPT_HARM or e.response is not None)]
            labels = [e.labels[task] for e in rows]
            if len(set(labels)) < 2:
                continue
            model = make_pipeline(
                TfidfVectorizer(ngram_range=(1, 2), max_features=self.max_features, sublinear_tf=True, min_df=2),
                LogisticRegression(max_iter=2000, class_weight="balanced", random_state=self.seed),
            )
            model.fit([features(task, e.prompt, e.response) for e in rows], labels)
            self.models[task] = model
            self.train_sizes[task] = len(rows)
        return self

    def predict(self, prompt: str, response: str | None) -> dict[str, str | None]:
        """Labels per task (None where the task has no classifier or does not apply)."""
        out: dict[str, str | None] = {}
        for task in TASKS:
            applies = task == PROMPT_HARM or response is not None
            model = self.models.get(task)
            out[task] = str(model.predict([features(task, prompt, response)])[0]) if model and applies else None
        return out

    def answers(self, prompt: str, response: str | None) -> str:
        """The prediction as a GuardReasoner answers block."""
        return get_family("guardreasoner").answer_block(self.predict(prompt, response)) + "\n"

    def write_predictions(self, benchmarks_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                          benchmarks: Sequence[BenchmarkSpec], limit: int | None = None,
                          sample: int | None = None) -> Path:  # fmt: skip
        """``<out_dir>/<Benchmark>/generated_predictions.jsonl`` for ``guardsdk eval --rescore``."""
        out = Path(out_dir)
        for spec in benchmarks:
            path = out / spec.name / PREDICTIONS_FILE
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("w", encoding="utf-8") as handle:
                for item in load_items(benchmarks_dir, spec, limit=limit, sample=sample):
                    row = {
                        "prompt": item.model_input,
                        "label": item.label,
                        "predict": self.answers(item.prompt, item.response),
                    }
                    handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        return out
