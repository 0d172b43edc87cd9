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
from guardsdk_trainer import fingerprint as fp
from guardsdk_trainer.config import RecipeConfig
from guardsdk_trainer.data import Example
from guardsdk_trainer.errors import StageFailed, StageOrderError
from guardsdk_trainer.manifest import slug
from guardsdk_trainer.mining import PreferencePair
from guardsdk_trainer.progress import stage as progress_stage
from guardsdk_trainer.runstate import OUTPUTS, STAGES, RunState, check_inputs

logger = logging.getLogger("guardsdk_trainer")

#: ``rsft.base_model`` values that build a random tiny Llama offline (CPU configs, tests): with the Llama 3
#: tokenizer, or with a small SentencePiece BPE trained on the SFT texts (fast on a CPU).
TINY_RANDOM_BASES = {"tiny-random": "llama3", "tiny-random-spm": "spm"}
#: The stage each stage reads the output of.
REQUIRES = {"synth": "data", "rsft": "synth", "bootstrap": "rsft", "sample": "rsft", "mine": "sample",
            "hsdpo": "mine", "evaluate": "rsft", "export": "rsft", "classifier": "data"}  # fmt: skip
__all__ = ["OUTPUTS", "REQUIRES", "STAGES", "Recipe"]


class Recipe(RunState):
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

    # -- bookkeeping (the rest in RunState) -------------------------------------------------
    def stage_key(self, stage: str) -> dict[str, Any]:
        """The config values and input runs ``stage`` depends on now, and their fingerprint."""
        values = fp.config_values(self.config, stage)
        inputs = fp.input_ids(self.config, stage, self.manifest["stages"])
        return {"fingerprint": fp.fingerprint(values, inputs), "config": values, "inputs": inputs}

    def run_stage(self, stage: str, *, force: bool = False) -> dict[str, Any]:
        """Run one stage (skipped when done with the same config and inputs, unless ``force``); its metrics."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")
        check_inputs(self.config)  # before anything is invalidated
        key = self.stage_key(stage)
        record = self.manifest["stages"].get(stage)
        if record is not None and force:
            logger.info("stage %s: rerunning (--force)", stage)
            self.check_before_removing(stage)
            self.forget([stage])
        elif record is not None:
            missing = self.missing_outputs(stage)
            if missing:
                why = f"its output {', '.join(missing)} is missing"
            elif record.get("fingerprint") == key["fingerprint"]:
                logger.info("stage %s already done with this config and these inputs; skipping", stage)
                return record["metrics"]
            else:
                why = f"{fp.what_changed(record, key['config'], key['inputs'])} since it ran"
            logger.warning("stage %s: %s; rerunning it and every stage after it", stage, why)
            self.check_before_removing(stage)
            self.invalidate_from(stage)
            key = self.stage_key(stage)
        needed = REQUIRES.get(stage)
        if needed is not None and not self.done(needed):
            raise StageOrderError(
                f"stage {stage} reads the output of stage {needed}, which has not run in {self.config.output_dir}: "
                f"run `guardsdk-train {needed} CONFIG` first (or `guardsdk-train recipe CONFIG` for every stage)"
            )
        started = time.time()
        runner: Callable[[], dict[str, Any]] = getattr(self, f"stage_{stage}")
        try:
            with progress_stage(stage):
                metrics = runner()
        except BaseException as error:  # a StageFailed, any other error, or an interrupt: the stage is not done
            self.record_failure(stage, error, error.keys if isinstance(error, StageFailed) else [])
            raise
        self._record(stage, metrics, started, key)
        return metrics

    def check_before_removing(self, stage: str) -> None:
        """What a stage's own run would refuse, refused before its last outputs are removed: the classifier's
        named pool sources (a misspelt one would otherwise cost the heads of its last good run)."""
        if stage == "classifier" and self.done("data"):
            from guardsdk_trainer.classifier import check_sources

            check_sources(self.config.classifier, {example.pool_source for example in self.examples("train")})

    def warn_stale(self, stage: str) -> None:
        """Log each recorded stage that ``stage`` reads whose config or inputs changed since it ran."""
        for name in fp.UPSTREAM[stage]:
            record, key = self.manifest["stages"].get(name), self.stage_key(name)
            if record is not None and record.get("fingerprint") != key["fingerprint"]:
                logger.warning("stage %s is out of date (%s): `recipe` reruns it and what follows",
                               name, fp.what_changed(record, key["config"], key["inputs"]))  # fmt: skip

    def run(self, stages: list[str] | None = None, force: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
        """Run the configured stages in order (``data`` always first); each stage in ``force``, and every
        stage after it, reruns from scratch."""
        wanted = stages or self.config.stages
        check_inputs(self.config)
        for name in force:
            if name not in STAGES:
                raise ValueError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")
        for name in [s for s in STAGES if s in force]:
            if self.manifest["stages"].get(name) is not None:
                logger.info("stage %s: rerunning (--force) with every stage after it", name)
            self.invalidate_from(name)
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
        if cfg.compact_traces:
            for example in examples:
                example.reasoning = example.reasoning and data_mod.compact_trace(example.reasoning)
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
        elif todo and cfg.template_rows:
            from guardsdk_trainer.template_teacher import fully_labelled, template_traces

            labelled = data_mod.interleave_by_labels([e for e in todo if fully_labelled(e)], self.config.data.seed)
            ready += template_traces(labelled[: cfg.template_rows])
            metrics["template_traces"] = min(len(labelled), cfg.template_rows)
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

            # The tokenizer learns the training inputs too, not only the traced rows (which may be few).
            texts = [t for e in sft for t in (e.model_input, e.reasoning or "")]
            texts += [e.model_input for e in self.examples("train")[:5000]]
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
        fit = json.loads(self.path("models", "rsft", "training.json").read_text()).get("fit", {})
        for source in self.config.sample.leave_one_out_sources:
            subset = [e for e in sft if e.source != source]
            train_rsft(base, subset, self.path("models", f"rsft-minus-{slug(source)}"), self.config.rsft)
            trained[f"rsft-minus-{slug(source)}"] = len(subset)
        return {"models": trained, "fit": fit}

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
        from guardsdk_trainer.bootstrap import run_bootstrap

        return run_bootstrap(self)

    def stage_sample(self) -> dict[str, Any]:
        from guardsdk_trainer.hardsampling import sample_until_pairs

        cfg = self.config.sample
        inputs = self.labelled_train_rows(set(), seed=self.config.data.seed + 1)
        samples, report = sample_until_pairs(self.models(), inputs, cfg, seed=self.config.data.seed)
        for name, rows in samples.items():
            rows_out = ({"id": k, "samples": v} for k, v in rows.items())
            data_mod.write_jsonl(self.path("samples", f"{name}.jsonl"), rows_out)
        return report

    def stage_mine(self) -> dict[str, Any]:
        from guardsdk_trainer.hardsampling import mine_samples

        return mine_samples(self)

    def pairs(self, name: str = "pairs") -> list[PreferencePair]:
        path = self.path("data", f"{name}.jsonl")
        return [PreferencePair(**r) for r in data_mod.read_jsonl(path)] if path.exists() else []

    def stage_hsdpo(self) -> dict[str, Any]:
        from guardsdk_trainer.hsdpo import train_hsdpo

        pairs = self.pairs()
        if not pairs:
            raise StageFailed("hsdpo", "no mined pairs to train on", ["sample.target_pairs", "sample.max_inputs"])
        train_hsdpo(self.current_rsft(), pairs, self.path("models", "hsdpo"), self.config.hsdpo)
        fit = json.loads(self.path("models", "hsdpo", "training.json").read_text()).get("fit", {})
        return {"pairs": len(pairs), "fit": fit}

    def stage_evaluate(self) -> dict[str, Any]:
        from guardsdk_trainer.evaluate import evaluate

        return evaluate(self)

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
