"""The whole recipe from one config, resumable stage by stage, with a run manifest."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from guardsdk_trainer import data as data_mod
from guardsdk_trainer.config import RecipeConfig, to_dict
from guardsdk_trainer.data import Example
from guardsdk_trainer.manifest import file_sha256, label_counts, library_versions, slug
from guardsdk_trainer.mining import PreferencePair

logger = logging.getLogger("guardsdk_trainer")

#: ``rsft.base_model`` values that build a random tiny Llama offline (CPU configs, tests): with the Llama 3
#: tokenizer, or with a small SentencePiece BPE trained on the SFT texts (fast on a CPU).
TINY_RANDOM_BASES = {"tiny-random": "llama3", "tiny-random-spm": "spm"}
STAGES = ("data", "synth", "rsft", "bootstrap", "sample", "mine", "hsdpo", "export", "classifier")
#: The stage each stage reads the output of.
REQUIRES = {"synth": "data", "rsft": "synth", "bootstrap": "rsft", "sample": "rsft", "mine": "sample",
            "hsdpo": "mine", "export": "rsft", "classifier": "data"}  # fmt: skip


class StageOrderError(ValueError):
    """A stage was asked for before the stage whose output it reads."""


class Recipe:
    """Runs the stages of :data:`STAGES` under ``config.output_dir``; a finished stage is skipped on rerun."""

    def __init__(self, config: RecipeConfig) -> None:
        self.config = config
        self.root = Path(config.output_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        self.manifest_path = self.root / "manifest.json"
        self.manifest: dict[str, Any] = (
            json.loads(self.manifest_path.read_text()) if self.manifest_path.exists() else {"stages": {}}
        )

    # -- paths -------------------------------------------------------------------------------
    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def examples(self, name: str) -> list[Example]:
        return [Example.from_json(r) for r in data_mod.read_jsonl(self.path("data", f"{name}.jsonl"))]

    def models(self) -> list[Path]:
        """The R-SFT models to sample from: the newest full one, then the leave-one-source-out ones."""
        return [self.current_rsft(), *sorted(self.path("models").glob("rsft-minus-*"))]

    # -- bookkeeping -------------------------------------------------------------------------
    def done(self, stage: str) -> bool:
        return stage in self.manifest["stages"]

    def _record(self, stage: str, metrics: dict[str, Any], started: float) -> None:
        self.manifest["stages"][stage] = {"metrics": metrics, "seconds": round(time.time() - started, 1)}
        self.manifest["config"] = to_dict(self.config)
        self.manifest["libraries"] = library_versions()
        inputs = [*self.config.data.pool, *self.config.data.reasoning, *self.config.data.exclude]
        self.manifest["inputs"] = {p: file_sha256(p) for p in inputs if Path(p).is_file()}
        self.manifest_path.write_text(json.dumps(self.manifest, indent=1), encoding="utf-8")

    def run_stage(self, stage: str, *, force: bool = False) -> dict[str, Any]:
        """Run one stage (skipped when already done unless ``force``); returns its metrics."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")
        if self.done(stage) and not force:
            logger.info("stage %s already done; skipping", stage)
            return self.manifest["stages"][stage]["metrics"]
        needed = REQUIRES.get(stage)
        if needed is not None and not self.done(needed):
            raise StageOrderError(
                f"stage {stage} reads the output of stage {needed}, which has not run in {self.config.output_dir}: "
                f"run `guardsdk-train {needed} CONFIG` first (or `guardsdk-train recipe CONFIG` for every stage)"
            )
        started = time.time()
        runner: Callable[[], dict[str, Any]] = getattr(self, f"stage_{stage}")
        metrics = runner()
        self._record(stage, metrics, started)
        return metrics

    def run(self, stages: list[str] | None = None) -> dict[str, Any]:
        """Run the configured stages in order (``data`` always first)."""
        wanted = stages or self.config.stages
        for stage in ("data", *[s for s in STAGES if s in wanted and s != "data"]):
            self.run_stage(stage)
        return self.manifest

    # -- stages ------------------------------------------------------------------------------
    def stage_data(self) -> dict[str, Any]:
        cfg = self.config.data
        examples: list[Example] = []
        for path in cfg.pool:
            examples += data_mod.load_pool(path)
        examples = examples[: cfg.max_pool_rows]
        for source in cfg.reasoning:
            examples += data_mod.load_reasoning(source)
        loaded = len(examples)
        examples = data_mod.deduplicate(examples)
        examples, excluded = data_mod.exclude_benchmarks(examples, cfg.exclude)
        train, held_out = data_mod.split(examples, cfg.eval_fraction, cfg.seed)
        data_mod.write_jsonl(self.path("data", "train.jsonl"), (e.to_json() for e in train))
        data_mod.write_jsonl(self.path("data", "eval.jsonl"), (e.to_json() for e in held_out))
        return {"loaded": loaded, "deduplicated": loaded - len(examples) - excluded, "excluded_benchmark": excluded,
                "train": len(train), "eval": len(held_out)}  # fmt: skip

    def stage_synth(self) -> dict[str, Any]:
        from guardsdk_trainer.synthesis import Synthesizer

        train = self.examples("train")
        ready = [e for e in train if e.reasoning]
        todo = [e for e in train if not e.reasoning]
        cfg = self.config.synth
        metrics: dict[str, Any] = {"with_reasoning": len(ready), "to_synthesize": len(todo)}
        if todo and cfg.base_url:
            synthesizer = Synthesizer(
                cfg.base_url,
                cfg.model,
                self.path("synth", "cache.jsonl"),
                api_key=os.environ.get(cfg.api_key_env, "EMPTY"),
                concurrency=cfg.concurrency,
                max_retries=cfg.max_retries,
                max_tokens=cfg.max_tokens,
                temperature=cfg.temperature,
                timeout_s=cfg.timeout_s,
            )
            report = synthesizer.run(todo)
            ready += report.kept
            metrics |= report.summary()
        data_mod.write_jsonl(self.path("data", "sft.jsonl"), (e.to_json() for e in ready))
        metrics["sft_rows"] = len(ready)
        return metrics

    def base_model(self, sft: list[Example]) -> str:
        """The R-SFT starting point: ``rsft.base_model``, or a tiny random model built once offline."""
        cfg = self.config.rsft
        if cfg.base_model not in TINY_RANDOM_BASES:
            return cfg.base_model
        folder = self.path("models", "base")
        if not (folder / "config.json").exists():
            from guardsdk.tools.tiny_model import build_tiny_llama

            texts = [t for e in sft for t in (e.model_input, e.reasoning or "")]
            build_tiny_llama(
                folder, seed=cfg.seed, tokenizer=TINY_RANDOM_BASES[cfg.base_model], texts=texts, **cfg.tiny_model
            )
        return str(folder)

    def stage_rsft(self) -> dict[str, Any]:
        from guardsdk_trainer.rsft import train_rsft

        sft = self.examples("sft")
        base = self.base_model(sft)
        train_rsft(base, sft, self.path("models", "rsft"), self.config.rsft)
        trained = {"rsft": len(sft)}
        for source in self.config.sample.leave_one_out_sources:
            subset = [e for e in sft if e.source != source]
            train_rsft(base, subset, self.path("models", f"rsft-minus-{slug(source)}"), self.config.rsft)
            trained[f"rsft-minus-{slug(source)}"] = len(subset)
        return {"models": trained}

    def current_rsft(self) -> Path:
        """The newest R-SFT model: the last bootstrap round's, else the R-SFT stage's."""
        rounds = sorted(self.path("models").glob("bootstrap-*"), key=lambda p: int(p.name.rsplit("-", 1)[1]))
        finished = [p for p in rounds if (p / "config.json").exists()]
        return finished[-1] if finished else self.path("models", "rsft")

    def labelled_train_rows(self, exclude: set[str], seed: int) -> list[Example]:
        """Training rows with at least one label and no trace, in :func:`~data.interleave_by_labels` order."""
        rows = [e for e in self.examples("train") if e.id not in exclude and not e.reasoning and any(e.labels.values())]
        return data_mod.interleave_by_labels(rows, seed)

    def stage_bootstrap(self) -> dict[str, Any]:
        import dataclasses
        import random

        from guardsdk_trainer.config import SampleConfig
        from guardsdk_trainer.rsft import train_rsft
        from guardsdk_trainer.sampling import sample
        from guardsdk_trainer.synthesis import clean_trace, consistent

        cfg = self.config.bootstrap
        sft = self.examples("sft")
        # Candidates must not depend on how far an interrupted run got: rows traced by earlier rounds count.
        logged = sorted(self.path("bootstrap").glob("round-*.jsonl"))
        bootstrapped = {row["id"] for path in logged for row in data_mod.read_jsonl(path)}
        candidates = self.labelled_train_rows({e.id for e in sft} - bootstrapped, seed=self.config.data.seed)
        sampling = SampleConfig(n=cfg.n, temperature=cfg.temperature, top_p=cfg.top_p,
                                max_new_tokens=cfg.max_new_tokens, engine=self.config.sample.engine)  # fmt: skip
        retrain = dataclasses.replace(self.config.rsft, epochs=cfg.epochs,
                                      learning_rate=cfg.learning_rate or self.config.rsft.learning_rate)  # fmt: skip
        log_path = self.path("bootstrap", "rounds.jsonl")
        rounds = data_mod.read_jsonl(log_path) if log_path.exists() else []
        for number in range(len(rounds), cfg.rounds):  # finished rounds are in the log: a rerun resumes
            batch = candidates[number * cfg.inputs_per_round : (number + 1) * cfg.inputs_per_round]
            if not batch:
                break
            current = self.current_rsft()
            outputs = sample(current, batch, sampling, seed=1000 + number)
            added = []
            for example in batch:
                traces = [clean_trace(text) for text in outputs.get(example.id, [])]
                trace = next((t for t in traces if consistent(example, t)), None)
                if trace is not None:
                    added.append(Example(example.prompt, example.response, example.labels, example.source, trace))
            data_mod.write_jsonl(self.path("bootstrap", f"round-{number + 1}.jsonl"), (e.to_json() for e in added))
            if added:
                replay = random.Random(number).sample(sft, min(len(sft), round(cfg.replay * len(added))))
                train_rsft(current, added + replay, self.path("models", f"bootstrap-{number + 1}"), retrain)
            sft += added
            data_mod.write_jsonl(self.path("data", "sft.jsonl"), (e.to_json() for e in sft))
            rounds.append({"round": number + 1, "tried": len(batch), "added": len(added),
                           "added_labels": label_counts(added)})  # fmt: skip
            data_mod.write_jsonl(log_path, rounds)
            logger.info("bootstrap round %d: %d of %d inputs gave a trace matching their labels",
                        number + 1, len(added), len(batch))  # fmt: skip
        return {"rounds": rounds, "sft_rows": len(sft)}

    def stage_sample(self) -> dict[str, Any]:
        from guardsdk_trainer.sampling import sample

        cfg = self.config.sample
        inputs = self.labelled_train_rows(set(), seed=self.config.data.seed + 1)[: cfg.max_inputs]
        counts = {}
        for seed, model in enumerate(self.models()):
            samples = sample(model, inputs, cfg, seed=seed)
            data_mod.write_jsonl(
                self.path("samples", f"{model.name}.jsonl"), ({"id": k, "samples": v} for k, v in samples.items())
            )
            counts[model.name] = sum(len(v) for v in samples.values())
        return {"inputs": len(inputs), "samples": counts}

    def stage_mine(self) -> dict[str, Any]:
        from guardsdk_trainer.mining import merge, mine

        by_id = {e.id: e for e in self.examples("train")}
        mined = []
        per_model = {}
        for path in sorted(self.path("samples").glob("*.jsonl")):
            samples = {r["id"]: r["samples"] for r in data_mod.read_jsonl(path)}
            pairs = mine([by_id[i] for i in samples if i in by_id], samples)
            per_model[path.stem] = len(pairs)
            mined.append(pairs)
        merged = merge(mined)
        data_mod.write_jsonl(self.path("data", "pairs.jsonl"), (p.to_json() for p in merged))
        return {"per_model": per_model, "pairs": len(merged)}

    def stage_hsdpo(self) -> dict[str, Any]:
        from guardsdk_trainer.hsdpo import train_hsdpo

        pairs = [PreferencePair(**r) for r in data_mod.read_jsonl(self.path("data", "pairs.jsonl"))]
        if not pairs:
            raise RuntimeError("no hard samples were mined: sample more inputs or more outputs per input")
        train_hsdpo(self.current_rsft(), pairs, self.path("models", "hsdpo"), self.config.hsdpo)
        return {"pairs": len(pairs)}

    def stage_classifier(self) -> dict[str, Any]:
        """Calibrated MiniLM heads (``<output_dir>/classifier``) on the training split; the held-out split
        reports their F1 and calibration error."""
        from guardsdk_trainer.classifier import train_classifier

        out = self.path("classifier")
        metrics = train_classifier(self.examples("train"), self.examples("eval"), self.config.classifier, out)
        return {"heads": str(out), **metrics}

    def stage_export(self) -> dict[str, Any]:
        from guardsdk_trainer.export import export

        final = self.path("models", "hsdpo") if self.done("hsdpo") else self.current_rsft()
        return export(final, self.path("gguf"), self.config.export)
