"""Side by side: seconds per R-SFT step of a tiny Llama with the Llama 3 tokenizer (128K vocabulary)
vs a small SentencePiece BPE, on real GuardReasoner traces, in one run (prints the ratio).

Usage: .venv/bin/python benchmarks/training/bench_training_step.py [HIDDEN] [LAYERS] [STEPS]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, where `benchmarks` imports from
from benchmarks._common import prediction_files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("hidden", nargs="?", type=int, default=256, metavar="HIDDEN", help="hidden size (256)")
    parser.add_argument("layers", nargs="?", type=int, default=6, metavar="LAYERS", help="layers (6)")
    parser.add_argument("steps", nargs="?", type=int, default=4, metavar="STEPS", help="training steps timed (4)")
    args = parser.parse_args()
    from guardsdk.tools.tiny_model import build_tiny_llama
    from guardsdk_trainer.config import SFTStageConfig
    from guardsdk_trainer.data import load_predictions
    from guardsdk_trainer.rsft import train_rsft

    hidden, layers, steps = args.hidden, args.layers, args.steps
    traces = [e for path in prediction_files() for e in load_predictions(path)]
    work = Path(tempfile.mkdtemp(prefix="guardsdk-step-"))
    shape = {"hidden_size": hidden, "intermediate_size": 3 * hidden, "num_hidden_layers": layers,
             "num_attention_heads": 8, "num_key_value_heads": 4}  # fmt: skip
    cfg = SFTStageConfig(learning_rate=1e-3, per_device_batch_size=8, gradient_accumulation_steps=1, max_length=1024,
                         bf16=False, gradient_checkpointing=False, max_steps=steps, logging_steps=1000)  # fmt: skip
    texts = [t for e in traces for t in (e.model_input, e.reasoning or "")]
    seconds = {}
    for tokenizer in ("llama3", "spm"):
        base = build_tiny_llama(work / tokenizer, tokenizer=tokenizer, texts=texts, vocab_size=8192, **shape)
        start = time.perf_counter()
        train_rsft(base, traces[: 8 * steps], work / f"{tokenizer}-out", cfg)
        seconds[tokenizer] = (time.perf_counter() - start) / steps
    print(f"{len(traces)} traces; hidden {hidden}, {layers} layers, batch 8, {steps} steps (incl. trainer set-up)")
    for name, value in seconds.items():
        print(f"{name:>7}: {value:6.2f} s/step")
    print(f"ratio llama3 / spm: {seconds['llama3'] / seconds['spm']:.1f}x")


if __name__ == "__main__":
    main()
