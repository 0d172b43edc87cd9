"""The classifier's encoder (all-MiniLM-L6-v2) on torch fp32 beside llama.cpp (the same weights as an F16 GGUF,
mean pooling), side by side in one run: texts per second on 256 ToxicChat prompts and the cosine of the two
runtimes' embeddings. Measures whether llama.cpp is the faster encoder runtime #12 looked for.

    .venv/bin/python benchmarks/speed/bench_encoder_runtimes.py [--threads 2] [--texts 256]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, where `benchmarks` imports from
from benchmarks._common import SHARED_BENCHMARKS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--texts", type=int, default=256)
    args = parser.parse_args()
    import llama_cpp
    import numpy as np
    import torch

    from guardsdk.detectors.classifier.encoder import MAX_TOKENS, SentenceEncoder, bundled_encoder_path
    from guardsdk.eval.benchmarks import benchmark, load_items
    from guardsdk.tools.gguf_export import convert_hf_to_gguf

    texts = [item.prompt for item in load_items(SHARED_BENCHMARKS, benchmark("ToxicChat"), sample=args.texts)]
    encoder = SentenceEncoder(threads=args.threads, precision="fp32")
    torch.set_num_threads(args.threads)
    # llama.cpp gets the text the torch encoder sees: cut at MAX_TOKENS tokens.
    cut = [encoder.tokenizer.decode(encoder.tokenizer(t, truncation=True, max_length=MAX_TOKENS)["input_ids"][1:-1])
           for t in texts]  # fmt: skip
    encoder.encode(texts[:8])
    started = time.perf_counter()
    reference = encoder.encode(texts).numpy()
    torch_s = time.perf_counter() - started
    print(f"torch fp32: {len(texts) / torch_s:.1f} texts/s")
    with tempfile.TemporaryDirectory() as tmp:
        gguf = convert_hf_to_gguf(bundled_encoder_path(), os.path.join(tmp, "minilm-f16.gguf"), "f16")
        for n_ctx in (512, 1024, 2048):
            sizes = {"n_ctx": n_ctx, "n_batch": n_ctx, "n_ubatch": n_ctx}
            llm = llama_cpp.Llama(str(gguf), embedding=True, pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
                                  n_threads=args.threads, verbose=False, **sizes)  # fmt: skip
            llm.embed(cut[:8])
            started = time.perf_counter()
            embeddings = np.array(llm.embed(cut, normalize=True))
            seconds = time.perf_counter() - started
            cosine = (
                (embeddings * reference).sum(1) / np.linalg.norm(embeddings, axis=1) / np.linalg.norm(reference, axis=1)
            )
            print(f"llama.cpp F16, batch {n_ctx} tokens: {len(texts) / seconds:.1f} texts/s "
                  f"({torch_s / seconds:.2f}x torch), cosine min {cosine.min():.5f}")  # fmt: skip
            llm.close()


if __name__ == "__main__":
    main()
