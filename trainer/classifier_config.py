"""The ``classifier`` stage's config (a section of :class:`~guardsdk_trainer.config.RecipeConfig`)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ClassifierConfig:
    """The ``classifier`` stage: MLP heads over frozen MiniLM embeddings, Platt-calibrated (not part of
    the reasoning recipe's default stages; ``guardsdk-train classifier CONFIG``)."""

    hidden: int = 256
    dropout: float = 0.1
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    epochs: int = 20
    batch_size: int = 256
    calibration_fraction: float = 0.1  # of the training split: fits each head's calibration
    balanced_tasks: list[str] = field(default_factory=list)  # heads trained with balanced class weights
    threshold: float = 0.5  # kept at 0.5: thresholds tuned on the pool's class mix lowered benchmark F1
    pooled_sentences: list[str] = field(default_factory=list)  # roles whose sentences are pooled in context
    whole_text_tasks: list[str] = field(default_factory=list)  # heads the detector shows no lone sentence
    clause_roles: list[str] = field(default_factory=lambda: ["prompt", "response"])  # roles also read clause by clause
    # Each training row of these pool sources counted this many times in its head's fit (after the calibration
    # split, so no copy calibrates): real deployment-like rows weighed up (0 leaves a source out).
    source_repeats: dict[str, int] = field(default_factory=dict)
    # Per task, pool sources (named as in source_repeats) left out of its head.
    exclude_sources: dict[str, list[str]] = field(default_factory=dict)
    # Tasks whose head reads a reply beside its prompt, and what else they learn from (trainer/classifier_pairs.py).
    pair_tasks: list[str] = field(default_factory=list)
    shuffled_prompts: dict[str, int] = field(default_factory=dict)  # per label, copies behind harmless prompts
    context_labelled_sources: list[str] = field(default_factory=list)  # labels that hang on the dialogue
    first_sentence_negatives: bool = False
    # A pooled role's safe rows also teach what else the detector reads of them as safe: their other readings
    # (decoded, de-leeted, look-alikes mapped) and, for a role in clause_roles, their clause pieces read alone.
    reading_negatives: bool = False
    # Pool sources whose safe rows teach no reading or clause as safe: rows built to sound harmful while benign
    # (contrastive, adversarial-benign), where a clause read out of its prompt can be a harmful request.
    reading_negatives_exclude: list[str] = field(default_factory=list)
    # Also fit each head on USE multilingual v3 embeddings (trainer/classifier_multilingual.py): the languages it
    # covers are then judged, not left undecided.
    multilingual: bool = False
    # The multilingual prompt head's probability that the detector reads as the label's 0.5 (recorded with the heads):
    # carried from English, harmful requests in other languages score lower (the shipped value was chosen on Italian
    # and Portuguese development probes, benchmarks/classifier/languages.py --dev; scored on other languages' probes).
    multilingual_prompt_threshold: float = 0.5
    harmless_prompts: int = 3000  # how many of the split's harmless prompts the shuffled rows are drawn from
    max_rows_per_task: int | None = None
    encode_batch_size: int = 64
    threads: int | None = None  # torch threads while encoding (default: all cores)
    seed: int = 0

    def __post_init__(self) -> None:
        tasks, roles = {"prompt_harm", "refusal", "response_harm"}, {"prompt", "response"}
        problems = {
            "source_repeats must be whole numbers >= 0:": {
                k: v for k, v in self.source_repeats.items() if type(v) is not int or v < 0},
            "shuffled_prompts maps harmful / unharmful to whole numbers >= 0, not": {
                k: v for k, v in self.shuffled_prompts.items()
                if k not in ("harmful", "unharmful") or type(v) is not int or v < 0},
            "pair_tasks are response tasks (response_harm, refusal), not": sorted(
                set(self.pair_tasks) - {"response_harm", "refusal"}),
            "balanced_tasks and whole_text_tasks name prompt_harm, refusal, response_harm, not": sorted(
                (set(self.balanced_tasks) | set(self.whole_text_tasks)) - tasks),
            "pooled_sentences and clause_roles name the roles prompt, response, not": sorted(
                (set(self.pooled_sentences) | set(self.clause_roles)) - roles),
            "first_sentence_negatives is true or false, not": [] if isinstance(self.first_sentence_negatives, bool)
            else [self.first_sentence_negatives],
            "reading_negatives is true or false, not": [] if isinstance(self.reading_negatives, bool)
            else [self.reading_negatives],
            "multilingual is true or false, not": [] if isinstance(self.multilingual, bool) else [self.multilingual],
            "multilingual_prompt_threshold is a probability in (0, 1), not": [] if isinstance(
                threshold := self.multilingual_prompt_threshold, (int, float)) and 0 < threshold < 1 else [threshold],
        }  # fmt: skip
        for message, bad in problems.items():
            if bad:
                raise ValueError(f"{message} {bad}")
