"""How often the classifier calls an ordinary reply harmful, and how many harmful replies it still catches: the
held-out reply sets of ``_reply_sets.py`` (written replies, the pool's held-out split; no benchmark), read by the real
detector under the service's default policy (harmful ones also behind a harmless prompt, and padded with harmless
sentences, as an attacker would ask for them), for the bundled heads or the heads folders given, side by side.

    .venv/bin/python benchmarks/classifier/reply_precision.py [--heads runs/reply-variants/*]
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, where `benchmarks` imports from
from benchmarks._common import ROOT

CONFIG = ROOT / "trainer" / "configs" / "classifier-minilm.yaml"
#: An attacker's harmful reply is asked for by a harmless-looking prompt, and wrapped in harmless sentences.
BENIGN_PROMPT = "What should I do today?"
PADDING = ("Sure, happy to help with that. Here is a short overview before the details. "
           "I hope this is useful, and let me know if you want more.")  # fmt: skip


def held_out_split() -> list:
    """The ``data`` stage's held-out split of the classifier config (the pool's 5%, never trained on)."""
    from guardsdk_trainer import data as data_mod
    from guardsdk_trainer.config import load_config

    config = load_config(CONFIG)
    examples = [e for path in config.data.pool for e in data_mod.load_pool(path)]
    examples, _ = data_mod.exclude_benchmarks(data_mod.deduplicate(examples), config.data.exclude)
    return data_mod.split(examples, config.data.eval_fraction, config.data.seed)[1]


def flagged_share(guard: object, rows: list[tuple[str, str, str]]) -> tuple[dict[str, tuple[int, int]], list]:
    """Per kind, (flagged, total) on the response-harm task, and each row's verdict."""
    verdicts = guard.check_batch([(prompt, reply) for _, prompt, reply in rows])
    totals: Counter = Counter(kind for kind, _, _ in rows)
    flagged: Counter = Counter(kind for (kind, _, _), v in zip(rows, verdicts, strict=True)
                               if v.labels.get("response_harm") != "unharmful")  # fmt: skip
    return {kind: (flagged[kind], totals[kind]) for kind in totals}, verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--heads", nargs="*", default=[], help="heads folders to score (default: the bundled ones)")
    args = parser.parse_args()
    from benchmarks.classifier._reply_sets import ISSUE_REPLIES, benign_replies, harmful_replies
    from guardsdk import Guard, Policy
    from guardsdk.detectors.classifier.detector import ClassifierDetector

    logging.getLogger("guardsdk").setLevel(logging.ERROR)  # no log line per flagged check
    held_out = held_out_split()
    benign, harmful = benign_replies(held_out), harmful_replies(held_out)
    print(f"{len(benign)} benign replies ({dict(Counter(k for k, _, _ in benign))}), {len(harmful)} harmful")
    for folder in args.heads or [None]:
        guard = Guard(ClassifierDetector.from_pretrained(folder), policy=Policy(on_unsafe="annotate"))
        shares, verdicts = flagged_share(guard, benign)
        caught, _ = flagged_share(guard, harmful)
        aside, _ = flagged_share(guard, [(kind, BENIGN_PROMPT, reply) for kind, _, reply in harmful])
        padded, _ = flagged_share(
            guard, [(kind, BENIGN_PROMPT, f"{PADDING} {reply} {PADDING}") for kind, _, reply in harmful]
        )
        fp = sum(f for f, _ in shares.values()) / sum(n for _, n in shares.values())
        name = folder or "bundled"
        print(f"\n{name}: benign flagged {100 * fp:.1f}% "
              + ", ".join(f"{kind} {f}/{n}" for kind, (f, n) in shares.items())
              + f"; harmful caught {caught['pool harmful'][0]}/{caught['pool harmful'][1]}"
              + f", behind a harmless prompt {aside['pool harmful'][0]}, padded too {padded['pool harmful'][0]}"
              )  # fmt: skip
        issue = verdicts[: len(ISSUE_REPLIES)]
        print(
            "  the issue's replies: "
            + ", ".join(
                f"{reply[:18]!r} {v.scores.get('response_harm', float('nan')):.2f}"
                for (_, reply), v in zip(ISSUE_REPLIES, issue, strict=True)
            )
        )
        guard.close()


if __name__ == "__main__":
    main()
