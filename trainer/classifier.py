"""The ``classifier`` stage: task heads over frozen MiniLM sentence embeddings, trained on the pool.

Each task's head reads one text (prompt harmfulness: the prompt; refusal and response harmfulness: the
response alone — encoding the pair let the heads learn "harmful prompt" as the cue, since the pool's harmful
responses sit behind harmful prompts). The recipe's training split is cut once more: most of it fits the
heads, the rest (``calibration_fraction``) fits each head's Platt calibration, and the recipe's held-out
split reports the calibrated heads' F1 and expected calibration error. Benchmarks are never read.

A head whose input the detector reads sentence by sentence in context (``pooled_sentences``) also learns
that each part the detector reads of a text labelled safe is safe — each sentence, pooled from that text's own
encoding, and each further window of a long text: a sentence read out of its text is what made benign prompts
look harmful (docs/models/guard-classifier-minilm.md).
"""

from __future__ import annotations

import logging
import math
import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from guardsdk.detectors.classifier.encoder import ENCODER_NAME, ENCODER_PACKAGE, SentenceEncoder
from guardsdk.detectors.classifier.heads import PAIR, HeadsConfig, TaskHead, save_heads
from guardsdk.eval.scoring import binary_scores
from guardsdk.verdict import PROMPT_HARM, REFUSAL, RESPONSE_HARM, Task
from guardsdk_trainer.classifier_cache import EmbeddingCache, stage_cache
from guardsdk_trainer.classifier_multilingual import multilingual_cache, multilingual_info
from guardsdk_trainer.classifier_pairs import HeadRows, harmless_prompts, pair_matrix
from guardsdk_trainer.config import ClassifierConfig
from guardsdk_trainer.data import Example
from guardsdk_trainer.errors import TrainerError

logger = logging.getLogger("guardsdk_trainer")

#: What each task's head reads.
HEAD_INPUTS = {PROMPT_HARM: "prompt", REFUSAL: "response", RESPONSE_HARM: "response"}


def labelled(examples: Sequence[Example], task: str, exclude: Sequence[str] = ()) -> list[Example]:
    """The examples that carry ``task``'s label and the text its head reads (none of a pool source in ``exclude``)."""
    return [e for e in examples if e.labels.get(task) and (text := getattr(e, HEAD_INPUTS[task])) and text.strip()
            and e.pool_source not in exclude]  # fmt: skip


def head_rows(examples: Sequence[Example], task: str, cfg: ClassifierConfig) -> HeadRows:
    """:func:`task_rows` (less ``cfg.exclude_sources``), with each row's prompt for a task in ``cfg.pair_tasks``."""
    kept = labelled(examples, task, cfg.exclude_sources.get(task, ()))
    prompts = [e.prompt or "" for e in kept] if task in cfg.pair_tasks else []
    return HeadRows(prompts, *_columns(kept, task))


def task_rows(examples: Sequence[Example], task: str, exclude: Sequence[str] = ()
              ) -> tuple[list[str], list[int], list[str]]:  # fmt: skip
    """The texts, 0/1 labels and sources of the examples that carry ``task``'s label and its input (none of a pool
    source named in ``exclude``)."""
    return _columns(labelled(examples, task, exclude), task)


def _columns(kept: Sequence[Example], task: str) -> tuple[list[str], list[int], list[str]]:
    labels = [int(e.labels[task] == Task(task).positive) for e in kept]
    return [getattr(e, HEAD_INPUTS[task]) for e in kept], labels, [e.pool_source for e in kept]


def reads_parts(task: str, cfg: ClassifierConfig) -> bool:
    """Whether ``task``'s head reads the sentences of a role pooled in context (and so learns its safe rows' parts)."""
    return HEAD_INPUTS[task] in cfg.pooled_sentences and task not in cfg.whole_text_tasks


def class_weights(labels: torch.Tensor, balanced: bool) -> torch.Tensor:
    """Per-row loss weights: 1, or (``balanced``) each label's rows weighing half of the total."""
    weights = torch.ones(len(labels))
    if balanced:
        for value in (0, 1):
            rows = labels == value
            weights[rows] = len(labels) / (2 * max(int(rows.sum()), 1))
    return weights


def fit_head(embeddings: torch.Tensor, labels: torch.Tensor, cfg: ClassifierConfig, task: str) -> TaskHead:
    """Train one head with AdamW on (weighted) binary cross-entropy, CPU-friendly minibatches."""
    with torch.random.fork_rng():  # seeded, without moving the caller's random state
        torch.manual_seed(cfg.seed)
        return _train(embeddings, labels, cfg, task)


def _train(embeddings: torch.Tensor, labels: torch.Tensor, cfg: ClassifierConfig, task: str) -> TaskHead:
    head = TaskHead(embeddings.shape[1], cfg.hidden, cfg.dropout)
    optimizer = torch.optim.AdamW(head.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    weights = class_weights(labels, task in cfg.balanced_tasks)
    head.train()
    for _ in range(cfg.epochs):
        for batch in torch.randperm(len(labels)).split(cfg.batch_size):
            optimizer.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                head(embeddings[batch]), labels[batch].float(), weight=weights[batch]
            )
            loss.backward()
            optimizer.step()
    return head.eval()


def calibrate(head: TaskHead, embeddings: torch.Tensor, labels: torch.Tensor, balanced: bool, steps: int = 200) -> None:
    """Fit Platt's ``sigmoid(a * logit + b)`` on held-out rows (LBFGS on the log loss) into ``head.calibration``;
    ``balanced``: under equal class weights, i.e. calibrated for a deployment where both labels are equally
    likely rather than for the pool's mix."""
    weights = class_weights(labels, balanced)
    with torch.no_grad():
        logits = head(embeddings)
    params = torch.tensor([1.0, 0.0], requires_grad=True)
    optimizer = torch.optim.LBFGS([params], max_iter=steps)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            params[0] * logits + params[1], labels.float(), weight=weights
        )
        loss.backward()
        return loss

    optimizer.step(closure)
    head.calibration.copy_(params.detach())


def held_out_metrics(probabilities: torch.Tensor, labels: torch.Tensor, threshold: float) -> dict[str, float]:
    """F1 of the positive label (%), and the expected calibration error over 10 bins."""
    f1 = binary_scores(labels.tolist(), (probabilities >= threshold).long().tolist(), positive=1).f1
    bins = torch.clamp((probabilities * 10).long(), max=9)
    ece = 0.0
    for b in range(10):
        rows = bins == b
        if rows.any():
            ece += abs(float(probabilities[rows].mean()) - float(labels[rows].float().mean())) * int(rows.sum())
    ece /= max(len(labels), 1)
    return {"f1": round(f1, 2), "ece": round(ece, 4), "n": len(labels)}


def rows_metrics(head: TaskHead, cache: EmbeddingCache, rows: HeadRows, threshold: float) -> dict[str, float]:
    """:func:`held_out_metrics` of ``head`` on ``rows`` (each text beside its prompt for a pair head's rows)."""
    embeddings = cache.encode(rows.texts)
    if rows.prompts:
        embeddings = torch.cat((cache.encode(rows.prompts), embeddings), 1)
    with torch.no_grad():
        return held_out_metrics(head.probability(embeddings), torch.tensor(rows.labels), threshold)


def calibration_split(n: int, cfg: ClassifierConfig, rng: random.Random) -> tuple[list[int], list[int]]:
    """Row indices that fit a head and those (a random ``calibration_fraction``, at least one) that calibrate it."""
    order = list(range(n))
    rng.shuffle(order)
    n_cal = max(1, math.ceil(n * cfg.calibration_fraction))
    return order[n_cal:], order[:n_cal]


def fit_pair_head(cache: EmbeddingCache, rows: HeadRows, cfg: ClassifierConfig, task: str, rng: random.Random,
                  harmless: Sequence[str]) -> tuple[TaskHead, dict[str, int]]:  # fmt: skip
    """A :data:`~guardsdk.detectors.classifier.heads.PAIR` head (``cfg.pair_tasks``): fitted and calibrated on the
    rows :func:`~guardsdk_trainer.classifier_pairs.pair_matrix` builds (no part rows in the calibration)."""
    fit_idx, cal_idx = calibration_split(len(rows.texts), cfg, rng)
    generator = torch.Generator().manual_seed(cfg.seed)
    behind = cache.encode(list(harmless))
    fit_x, fit_y = pair_matrix(cache, rows, fit_idx, cfg, behind, generator, parts=reads_parts(task, cfg))
    cal_x, cal_y = pair_matrix(cache, rows, cal_idx, cfg, behind, generator, parts=False)
    logger.info("classifier: %s pair head on %d rows (%d real pairs; +%d for calibration)", task, len(fit_y),
                len(fit_idx), len(cal_y))  # fmt: skip
    head = fit_head(fit_x, fit_y, cfg, task)
    calibrate(head, cal_x, cal_y, task in cfg.balanced_tasks)
    return head, {"train_rows": len(fit_y), "pairs": len(fit_idx), "calibration_rows": len(cal_y)}


def fit_task_head(cache: EmbeddingCache, texts: Sequence[str], labels: Sequence[int], cfg: ClassifierConfig,
                  task: str, rng: random.Random, sources: Sequence[str] = ()
                  ) -> tuple[TaskHead, dict[str, int]]:  # fmt: skip
    """One task's head: a random ``calibration_fraction`` of the rows fits its calibration, the rest the head (with
    the in-context sentences of the safe rows as safe, when its input is in ``pooled_sentences``; a row of a source
    in ``cfg.source_repeats`` as often as it says); and the counts."""
    fit_idx, cal_idx = calibration_split(len(texts), cfg, rng)
    if (cfg.source_repeats or cfg.reading_negatives_exclude) and len(sources) != len(texts):
        raise ValueError("source_repeats and reading_negatives_exclude need each row's source (fit_task_head's)")
    if cfg.source_repeats:
        fit_idx = [i for i in fit_idx for _ in range(cfg.source_repeats.get(sources[i], 1))]
    logger.info("classifier: %s head on %d rows (+%d for calibration)", task, len(fit_idx), len(cal_idx))
    pooled = reads_parts(task, cfg)
    embeddings = cache.encode(texts, parts=pooled)
    y = torch.tensor(labels)
    fit_x, fit_y = embeddings[fit_idx], y[fit_idx]
    negatives = torch.empty(0, cache.encoder.dimension)
    if pooled:  # every part the detector reads of a text labelled safe is safe: its sentences in context, its windows
        safe = [texts[i] for i in fit_idx if labels[i] == 0]
        negatives = cache.pooled_parts(safe)
        if cfg.reading_negatives:  # and its other readings and clauses (none of a source built to sound harmful)
            clauses = HEAD_INPUTS[task] in cfg.clause_roles
            kept = [texts[i] for i in fit_idx if labels[i] == 0 and sources[i] not in cfg.reading_negatives_exclude]
            negatives = torch.cat((negatives, cache.further_parts(kept, clauses)))
        fit_x, fit_y = torch.cat((fit_x, negatives)), torch.cat((fit_y, torch.zeros(len(negatives), dtype=y.dtype)))
    head = fit_head(fit_x, fit_y, cfg, task)
    calibrate(head, embeddings[cal_idx], y[cal_idx], task in cfg.balanced_tasks)
    return head, {"train_rows": len(fit_idx), "calibration_rows": len(cal_idx), "part_negatives": len(negatives)}


def check_sources(cfg: ClassifierConfig, sources: set[str]) -> None:
    """A :class:`TrainerError` for a source that ``source_repeats``, ``exclude_sources`` or
    ``context_labelled_sources`` names and the split does not have, or a task ``exclude_sources`` names that has no
    head (a misspelt name would otherwise leave it silently unapplied); the counts are :class:`ClassifierConfig`'s."""
    named = set(cfg.source_repeats).union(
        *cfg.exclude_sources.values(), cfg.context_labelled_sources, cfg.reading_negatives_exclude
    )
    unknown = sorted(named - sources)
    if unknown:
        raise TrainerError(f"the classifier config names sources the training split lacks: {unknown}; "
                         f"it has {sorted(sources)}")  # fmt: skip
    tasks = sorted(set(cfg.exclude_sources) - set(HEAD_INPUTS))
    if tasks:
        raise TrainerError(f"exclude_sources names unknown tasks: {tasks}; the heads are {sorted(HEAD_INPUTS)}")


def train_classifier(train: Sequence[Example], held_out: Sequence[Example], cfg: ClassifierConfig,
                     out_dir: str | Path, encoder: SentenceEncoder | None = None) -> dict[str, Any]:  # fmt: skip
    """Fit, calibrate and save the heads of every task with two labels in ``train``; returns metrics."""
    check_sources(cfg, {example.pool_source for example in train})
    cache = stage_cache(cfg, encoder)
    rng = random.Random(cfg.seed)
    heads: dict[str, TaskHead] = {}
    metrics: dict[str, Any] = {}
    harmless = harmless_prompts(train, cfg) if cfg.pair_tasks else []
    fitted: dict[str, tuple[HeadRows, HeadRows]] = {}  # the rows of each single-text head, for multilingual heads
    for task in HEAD_INPUTS:
        rows = sized(head_rows(train, task, cfg), cfg, rng)
        if len(set(rows.labels)) < 2:
            logger.info("classifier: no head for %s (one label only)", task)
            continue
        if task in cfg.pair_tasks:
            head, counts = fit_pair_head(cache, rows, cfg, task, rng, harmless)
        else:
            head, counts = fit_task_head(cache, rows.texts, rows.labels, cfg, task, rng, rows.sources)
        test = head_rows(held_out, task, cfg)
        if task not in cfg.pair_tasks:
            fitted[task] = rows, test
        heads[task] = head
        task_metrics: dict[str, Any] = {**counts, "positives": sum(rows.labels), "sources": dict(Counter(rows.sources))}
        if test.labels:
            task_metrics["held_out"] = rows_metrics(head, cache, test, cfg.threshold)
        metrics[task] = task_metrics
    inputs = {t: PAIR if t in cfg.pair_tasks else HEAD_INPUTS[t] for t in heads}
    config = HeadsConfig(encoder=ENCODER_NAME, encoder_package=ENCODER_PACKAGE, dimension=cache.encoder.dimension,
                         hidden=cfg.hidden, inputs=inputs, threshold=cfg.threshold,
                         pooled_sentences=list(cfg.pooled_sentences),
                         whole_text_tasks=list(cfg.whole_text_tasks), clause_roles=list(cfg.clause_roles),
                         training=metrics)  # fmt: skip
    foreign: dict[str, TaskHead] = {}
    if cfg.multilingual:
        foreign, config.multilingual = fit_multilingual_heads(fitted, cfg)
    save_heads(out_dir, heads, config, foreign)
    return metrics


def fit_multilingual_heads(rows: dict[str, tuple[HeadRows, HeadRows]], cfg: ClassifierConfig
                           ) -> tuple[dict[str, TaskHead], dict[str, Any]]:  # fmt: skip
    """The prompt head (of ``rows``: each task's training and held-out rows) on USE multilingual v3 embeddings, fitted
    and calibrated as the MiniLM heads are (a calibration split of its own), and what the heads config records of it
    (held-out F1: English rows). Replies in other languages are not read (no foreign reply to choose a threshold on)."""
    cache, rng = multilingual_cache(cfg), random.Random(cfg.seed + 1)
    heads, metrics = {}, {}
    for task, (train, test) in ((t, r) for t, r in rows.items() if t == PROMPT_HARM):
        logger.info("classifier: %s multilingual head (USE multilingual v3)", task)
        heads[task], metrics[task] = fit_task_head(cache, train.texts, train.labels, cfg, task, rng, train.sources)
        if test.labels:
            metrics[task]["held_out"] = rows_metrics(heads[task], cache, test, cfg.threshold)
    return heads, multilingual_info(heads, cfg, metrics)


def sized(rows: HeadRows, cfg: ClassifierConfig, rng: random.Random) -> HeadRows:
    """``rows``, or a random ``cfg.max_rows_per_task`` of them."""
    if cfg.max_rows_per_task and len(rows.labels) > cfg.max_rows_per_task:
        return rows.subset(sorted(rng.sample(range(len(rows.labels)), cfg.max_rows_per_task)))
    return rows
