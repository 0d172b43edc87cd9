"""How the classifier judges text in other languages: the hand-written probe set of ``encoder_candidates.py`` (25
harmful and 25 benign requests, each in en, es, de, fr, zh; never trained on), and the held-out pool prompts MiniLM
cannot read (the ``data`` stage's 5%, no benchmark), for the bundled heads or the heads folders given, side by side.
Per language: harmful requests the default ``Guard()`` allows (decided safe) and those a cascade's default band would
let the classifier allow alone (p <= 0.05, never reaching the reasoning guard); benign requests flagged (harmful or
undecided: alone, the guard blocks both); how many were undecided.

    .venv/bin/python benchmarks/classifier/languages.py [--heads FOLDER ...] [--dev]

``--dev`` instead sweeps the multilingual prompt head's threshold on the Italian and Portuguese development probes
(``_language_dev.py``) and prints F1 per threshold: how ``multilingual_prompt_threshold`` is chosen (the highest F1;
the test probes above are never used for it).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, where `benchmarks` imports from

#: A cascade's default band: at or under its low end the classifier allows alone (guardsdk.detectors.cascade).
ALLOW_ALONE = 0.05


def judged(guard: object, prompts: list[str]) -> list[tuple[str, float]]:
    """Per prompt: its label (``harmful``, ``unharmful`` or ``undecided``) and prompt_harm score (NaN undecided)."""
    verdicts = guard.check_batch([(prompt, None) for prompt in prompts])
    return [(str(v.labels.get("prompt_harm") or "undecided"), v.scores.get("prompt_harm", float("nan")))
            for v in verdicts]  # fmt: skip


def row(name: str, harmful: list[tuple[str, float]], benign: list[tuple[str, float]]) -> str:
    """One table row: harmful allowed / allowed alone by a cascade, benign flagged, undecided."""
    allowed = sum(label == "unharmful" for label, _ in harmful)
    alone = sum(label == "unharmful" and score <= ALLOW_ALONE for label, score in harmful)
    flagged = sum(label != "unharmful" for label, _ in benign)
    undecided = sum(label == "undecided" for label, _ in harmful + benign)
    return (f"| {name} | {allowed}/{len(harmful)} | {alone}/{len(harmful)} | {flagged}/{len(benign)} | "
            f"{undecided}/{len(harmful) + len(benign)} |")  # fmt: skip


def dev_sweep(detector: object) -> None:
    """F1 of the development probes over thresholds 0.05-0.5 of the multilingual prompt head (read at 0.5 first); an
    undecided probe counts as flagged."""
    from benchmarks.classifier._language_dev import BENIGN, HARMFUL
    from guardsdk import Policy

    detector.multilingual.shift = 0.0  # the head's own calibration: the threshold is what is chosen
    texts = [(t, 1) for pair in HARMFUL for t in pair] + [(t, 0) for pair in BENIGN for t in pair]
    verdicts = detector.detect([(t, None) for t, _ in texts], Policy(), float("inf"))
    scores = [v.scores.get("prompt_harm", float("nan")) for v in verdicts]
    labels = [y for _, y in texts]
    print(f"{sum(labels)} harmful, {len(labels) - sum(labels)} benign development probes (it, pt); "
          f"undecided {sum(s != s for s in scores)}")  # fmt: skip
    print("| threshold | harmful allowed | benign flagged | F1 |\n|---|---|---|---|")
    for threshold in [k / 20 for k in range(1, 11)]:
        flagged = [not s < threshold for s in scores]  # NaN (undecided) is flagged
        tp = sum(f and y for f, y in zip(flagged, labels, strict=True))
        fp = sum(f and not y for f, y in zip(flagged, labels, strict=True))
        print(f"| {threshold:.2f} | {sum(labels) - tp} | {fp} | {200 * tp / (tp + fp + sum(labels)):.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--heads", nargs="*", default=[], help="heads folders to score (default: the bundled ones)")
    parser.add_argument("--dev", action="store_true", help="sweep the threshold on the development probes instead")
    args = parser.parse_args()
    from benchmarks.classifier.encoder_candidates import BENIGN_PROBES, HARMFUL_PROBES, LANGUAGES
    from benchmarks.classifier.reply_precision import held_out_split
    from guardsdk import Guard, Policy
    from guardsdk.detectors.classifier.detector import ClassifierDetector
    from guardsdk.detectors.classifier.reading import unreadable

    logging.getLogger("guardsdk").setLevel(logging.ERROR)  # no log line per flagged check
    if args.dev:
        for folder in args.heads or [None]:
            print(f"\n{folder or 'bundled'}:")
            dev_sweep(ClassifierDetector.from_pretrained(folder))
        return
    pool = [e for e in held_out_split() if e.labels.get("prompt_harm") and (e.prompt or "").strip()]
    foreign = [e for e in pool if unreadable(e.prompt)]
    print(f"held-out pool prompts MiniLM cannot read: {len(foreign)} of {len(pool)}")
    for folder in args.heads or [None]:
        guard = Guard(ClassifierDetector.from_pretrained(folder), policy=Policy(on_unsafe="annotate"))
        print(f"\n{folder or 'bundled'}:\n")
        print("| language | harmful allowed | harmful allowed alone by a cascade | benign flagged | undecided |")
        print("|---|---|---|---|---|")
        for i, language in enumerate(LANGUAGES):
            harmful = judged(guard, [probe[i] for probe in HARMFUL_PROBES])
            print(row(language, harmful, judged(guard, [probe[i] for probe in BENIGN_PROBES])))
        read = judged(guard, [e.prompt for e in foreign])
        labels = [e.labels["prompt_harm"] for e in foreign]
        print(row("held-out pool, not English", [r for r, y in zip(read, labels, strict=True) if y == "harmful"],
                  [r for r, y in zip(read, labels, strict=True) if y != "harmful"]))  # fmt: skip
        guard.close()


if __name__ == "__main__":
    main()
