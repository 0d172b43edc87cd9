"""Reasoning-guard speed on this CPU, side by side in one run (issue: CPU speed of the reasoning guard).

Part 1, end to end on a GGUF guard model (default: the bundled guardreasoner-tiny), the same prompt checks
through each path, one thread count, medians:
  deploy         the deploy-style path: the whole input evaluated for every check (no prefix reuse)
  sdk            the SDK path before drafting: Guard(model) with LlamaCppBackend(drafting=False), the shared
                 instruction reused from the KV cache
  exact          the SDK path now (drafting on, here with this machine's measured verify costs)
  needed_tasks   Guard(model, mode="needed_tasks"): reasoning about Task 1 only, then the answer forced
  verdict_first  Guard(model, mode="verdict_first", reason_when=()): the answer read right after the input
with each path's agreement with the sdk path's prompt verdicts (and, for deploy, the share of identical text).

Part 2, for a GuardReasoner-1B-shape model: a random-weight GGUF of its shape (--shape-gguf; built by
--build-shape DIR) measures the component costs on this CPU (prefill, one decode step, a batch of k tokens
with logits for each, as draft verification needs), and the published GuardReasoner-1B outputs on the
prompt benchmarks give the token counts of each path; their product is the modelled seconds per check.

Part 3 (--quant-types): prefill and decode speed of llama.cpp types of that shape, made from one F16 file.

Usage: .venv/bin/python benchmarks/speed/bench_speed.py [--checks 40] [--threads 2] [--shape-gguf PATH]
       [--quant-types F16 Q8_0 Q4_0 Q4_K_M]
       .venv/bin/python benchmarks/speed/bench_speed.py --build-shape /tmp/gr1b   (once: ~6 GB of disk while it builds)
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, where `benchmarks` imports from
from benchmarks._common import PREDICTIONS, SHARED_BENCHMARKS, read_jsonl

if TYPE_CHECKING:
    from guardsdk import Policy
    from guardsdk.backends.drafting import Drafter, VerifyCosts
    from guardsdk.backends.llamacpp import LlamaCppBackend

PROMPT_SETS = ("ToxicChat", "OpenAIModeration", "AegisSafetyTest", "SimpleSafetyTests", "HarmBenchPrompt")
PUBLISHED_PROMPT_SETS = ("AegisSafetyTest", "HarmBenchPrompt", "SimpleSafetyTests")
PUBLISHED_RESPONSE_SETS = ("HarmBenchResponse", "XSTestReponseHarmful", "XSTestResponseRefusal")
WARM_UP = 10  # checks before the measured ones, the same for every path


def annotate() -> Policy:
    """The policy of every measured guard: a blocked check is annotated, not raised."""
    from guardsdk import Policy

    return Policy(on_unsafe="annotate")


def answer_lead() -> str:
    """The forced answer lead of a verdict-first check."""
    from guardsdk.families.guardreasoner import ANSWERS_HEADING

    return ANSWERS_HEADING + "Request:"


def sample_prompts(count: int, sets: tuple[str, ...] = PROMPT_SETS) -> list[str]:
    from guardsdk.eval.benchmarks import BENCHMARKS, load_items

    specs = [spec for spec in BENCHMARKS if spec.name in sets]
    per_set = -(-count // len(specs))
    prompts = [item.prompt for spec in specs for item in load_items(SHARED_BENCHMARKS, spec, sample=per_set)]
    return prompts[:count]


# -- part 1: end to end --------------------------------------------------------------------------------
def run_path(name: str, backend: LlamaCppBackend, warm_up: list[str], prompts: list[str]) -> tuple[list[float], list]:
    from guardsdk import Guard

    mode = name if name in ("needed_tasks", "verdict_first") else "single"
    options = {"reason_when": ()} if name == "verdict_first" else {}
    guard = Guard(backend, mode=mode, policy=annotate(), **options)
    guard.check_batch(warm_up)  # the shared instruction goes into the KV cache; a drafter learns from these
    seconds, verdicts = [], []
    for prompt in prompts:
        if name == "deploy":
            backend.llm.reset()  # a server without prefix reuse evaluates the whole input each time
        started = time.perf_counter()
        verdicts.append(guard.check(prompt))
        seconds.append(time.perf_counter() - started)
    return seconds, verdicts


def end_to_end(model: Path, warm_up: list[str], prompts: list[str], threads: int) -> list[dict]:
    from guardsdk.backends.llamacpp import LlamaCppBackend

    plain = LlamaCppBackend(model, n_threads=threads, drafting=False)
    drafting = LlamaCppBackend(model, n_threads=threads, drafting="measure")
    backends = {"deploy": plain, "sdk": plain, "exact": drafting, "needed_tasks": plain, "verdict_first": plain}
    results = {name: run_path(name, backend, warm_up, prompts) for name, backend in backends.items()}
    print(f"exact: verify costs {dict(drafting.drafter.costs.ratios)}, drafts accepted "
          f"{drafting.drafter.accepted}/{drafting.drafter.proposed}\n")  # fmt: skip
    plain.close()
    drafting.close()
    sdk_seconds, sdk_verdicts = results["sdk"]
    rows = []
    for name, (seconds, verdicts) in results.items():
        pairs = list(zip(verdicts, sdk_verdicts, strict=True))
        same = sum(v.labels["prompt_harm"] == s.labels["prompt_harm"] for v, s in pairs)
        text = sum(v.raw == s.raw for v, s in pairs) if name in ("deploy", "exact") else None
        rows.append({
            "path": name,
            "median_s": statistics.median(seconds),
            "mean_s": statistics.fmean(seconds),
            "speedup_vs_deploy": statistics.median(results["deploy"][0]) / statistics.median(seconds),
            "speedup_vs_sdk": statistics.median(sdk_seconds) / statistics.median(seconds),
            "median_tokens_out": statistics.median(v.tokens_out for v in verdicts),
            "same_verdict_as_sdk": f"{same}/{len(prompts)}",
            "same_text_as_sdk": None if text is None else f"{text}/{len(prompts)}",
        })  # fmt: skip
    return rows


# -- part 2: the 1B shape, modelled from component costs -----------------------------------------------
def build_shape(out: Path) -> Path:
    """A random-weight GGUF (Q4_K_M) of GuardReasoner-1B's shape (Llama-3.2-1B)."""
    from guardsdk.tools.gguf_export import convert_hf_to_gguf, quantize
    from guardsdk.tools.tiny_model import build_tiny_llama

    shape = {"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32,
             "num_key_value_heads": 8, "initializer_range": 0.02}  # fmt: skip
    hf = build_tiny_llama(out / "hf", **shape)
    f16 = convert_hf_to_gguf(hf, out / "gr1b-shape-f16.gguf", "f16")
    return quantize(f16, out / "gr1b-shape-Q4_K_M.gguf", "Q4_K_M")


def timed(action, repeats: int = 3) -> float:
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def component_costs(model: Path, threads: int) -> dict[str, float]:
    """Seconds for: prefill of n tokens after the shared instruction, one decode step, k tokens in one batch
    with logits for each (the pending token and k-1 drafts to verify)."""
    from guardsdk.backends.llamacpp import LlamaCppBackend
    from guardsdk.backends.llamacpp_build import measure_verify_costs
    from guardsdk.families.guardreasoner.template import INSTRUCTION

    backend = LlamaCppBackend(model, n_threads=threads)
    llm = backend.llm
    prefix = backend.input_ids(INSTRUCTION + "\n")
    filler = backend.tokenize(" the guard reads this text" * 200)

    def prefill(count: int) -> None:
        llm.n_tokens = len(prefix)
        llm.eval(filler[:count])

    llm.reset()
    llm.eval(prefix)
    costs = {f"prefill_{n}": timed(lambda n=n: prefill(n), repeats=5) for n in (8, 32, 128, 512)}
    verify = measure_verify_costs(backend, repeats=15)
    costs["step"] = verify.step_s
    costs |= {f"verify_{k}": ratio * verify.step_s for k, ratio in verify.ratios.items() if k > 1}
    backend.close()
    return costs


def prefill_seconds(costs: dict[str, float], tokens: int) -> float:
    """Linear between the measured prefill sizes (per-token rate of the nearest size above, at most 512)."""
    sizes = [8, 32, 128, 512]
    size = next((s for s in sizes if tokens <= s), 512)
    return costs[f"prefill_{size}"] * tokens / size


def published_checks(tokenizer: LlamaCppBackend, sets: tuple[str, ...]) -> list[dict]:
    """Per published GuardReasoner-1B check: the input's ids, the output's ids (end of turn included), and the
    token counts of the user part, the output and its Task 1 reasoning."""
    from guardsdk.families.guardreasoner.template import INSTRUCTION

    eos = tokenizer.llm.token_eos()
    checks = []
    for name in sets:
        for row in read_jsonl(PREDICTIONS / "1B" / name / "generated_predictions.jsonl"):
            output = row["predict"]
            out_ids = [*tokenizer.tokenize(output), eos]
            checks.append({
                "input_ids": tokenizer.input_ids(row["prompt"]),
                "out_ids": out_ids,
                "user": len(tokenizer.tokenize(row["prompt"][len(INSTRUCTION) + 1 :])),
                "out": len(out_ids),
                "task1": len(tokenizer.tokenize(output.split("# Task 2")[0])),
            })  # fmt: skip
    return checks


def answer_tail(tokenizer: LlamaCppBackend, sets: tuple[str, ...]) -> dict[str, float]:
    """What stopping a prompt check at its last needed answer line would save and break, on the published
    GuardReasoner-1B outputs: the median tokens from ``\nCompletion:`` to the end (end of turn included), and
    how many outputs write ``\nCompletion:`` before their answers heading (a stop string would cut them short)."""
    tails, early, outputs = [], 0, 0
    for name in sets:
        for row in read_jsonl(PREDICTIONS / "1B" / name / "generated_predictions.jsonl"):
            output = row["predict"]
            outputs += 1
            at, answers = output.find("\nCompletion:"), output.find("Answers:")
            if at != -1:
                tails.append(len(tokenizer.tokenize(output[at:])) + 1)
                early += answers == -1 or at < answers
    return {"outputs": outputs, "median_tail_tokens": statistics.median(tails), "completion_before_answers": early}


def drafted_seconds(costs: dict[str, float], checks: list[dict], drafter: Drafter) -> list[float]:
    """Seconds per check with drafting, replaying each published output as the greedy one: a draft is accepted
    exactly where it equals the next output token. The drafter learns from each output, as the backend does.
    Each batch is charged at this run's measured costs, whatever costs the drafter chose its lengths by."""
    measured = measured_verify_costs(costs)
    seconds = []
    for check in checks:
        out = check["out_ids"]
        spent = prefill_seconds(costs, check["user"])
        output = out[:1]  # the first token comes from the prefill
        while len(output) < len(out):
            drafts, from_lookup = drafter.propose(check["input_ids"], output)
            expected = out[len(output) : len(output) + len(drafts)]
            matches = [d == e for d, e in zip(drafts, expected, strict=False)]
            accepted = matches.index(False) if False in matches else len(matches)
            spent += measured.cost(1 + len(drafts)) * costs["step"]
            drafter.observe(len(drafts), accepted, from_lookup)
            output = out[: len(output) + accepted + 1]
        drafter.learn(out)
        seconds.append(spent)
    return seconds


def measured_verify_costs(costs: dict[str, float]) -> VerifyCosts:
    """The verify costs of :func:`component_costs`, as ratios to one decode step."""
    from guardsdk.backends.drafting import VerifyCosts

    return VerifyCosts({1: 1.0, **{k: costs[f"verify_{k}"] / costs["step"] for k in (2, 4, 8)}})


def modelled(
    costs: dict[str, float], checks: list[dict], others: list[dict], instruction: int, lead: int
) -> list[dict]:
    """Seconds per check of each path; ``instruction``: tokens of the shared instruction, ``lead``: of the
    forced answer lead; ``others``: published outputs of other benchmarks, for a drafter that starts warm."""
    from guardsdk.backends.drafting import DEFAULT_VERIFY_COSTS, MAX_DRAFT, Drafter

    verify = measured_verify_costs(costs)
    warm = Drafter(verify)
    for check in others:
        warm.learn(check["out_ids"])
    seconds = {
        "deploy": [prefill_seconds(costs, instruction + c["user"]) + (c["out"] - 1) * costs["step"] for c in checks],
        "sdk": [prefill_seconds(costs, c["user"]) + (c["out"] - 1) * costs["step"] for c in checks],
        "exact (online table)": drafted_seconds(costs, checks, Drafter(verify)),
        "exact (draft lengths by the shipped default costs)": drafted_seconds(costs, checks,
                                                                               Drafter(DEFAULT_VERIFY_COSTS)),
        "exact (table warm from other sets)": drafted_seconds(costs, checks, warm),
        f"drafts up to {MAX_DRAFT} (exact only on builds whose larger batches match steps)": drafted_seconds(
            costs, checks, Drafter(verify, max_draft=MAX_DRAFT)),
        "needed_tasks": [prefill_seconds(costs, c["user"]) + c["task1"] * costs["step"] + prefill_seconds(costs, lead)
                         for c in checks],
        "verdict_first": [prefill_seconds(costs, c["user"] + lead) for c in checks],
    }  # fmt: skip
    return [{"path": name, "median_s": statistics.median(s), "mean_s": statistics.fmean(s),
             "speedup_vs_deploy": statistics.median(seconds["deploy"]) / statistics.median(s),
             "speedup_vs_sdk": statistics.median(seconds["sdk"]) / statistics.median(s)}
            for name, s in seconds.items()]  # fmt: skip


def quant_types(f16: Path, types: list[str], threads: int) -> list[dict]:
    """Prefill and decode speed of each llama.cpp type, made from the same F16 file."""
    from guardsdk.tools.gguf_export import quantize

    rows = []
    for qtype in types:
        path = f16 if qtype.upper() == "F16" else f16.with_name(f"gr1b-shape-{qtype}.gguf")
        if not path.exists():
            quantize(f16, path, qtype)
        costs = component_costs(path, threads)
        rows.append({"type": qtype, "MiB": path.stat().st_size / 2**20,
                     "prefill_tok_s": 128 / costs["prefill_128"], "decode_tok_s": 1 / costs["step"],
                     "verify_8_vs_step": costs["verify_8"] / costs["step"]})  # fmt: skip
    return rows


def verdict_first_measured(model: Path, prompts: list[str], threads: int) -> dict:
    """Seconds per verdict-first prompt check, end to end on the shape model (random weights: its forced answers
    are undecided, but the work is the real work: one forward pass over the user text and the lead)."""
    from guardsdk import Guard
    from guardsdk.backends.llamacpp import LlamaCppBackend

    guard = Guard(LlamaCppBackend(model, n_threads=threads), mode="verdict_first", reason_when=(), policy=annotate())
    guard.check(prompts[0])
    seconds = []
    for prompt in prompts[1:]:
        started = time.perf_counter()
        guard.check(prompt)
        seconds.append(time.perf_counter() - started)
    guard.close()
    return {"path": "verdict_first (measured end to end)", "checks": len(seconds),
            "median_s": statistics.median(seconds), "mean_s": statistics.fmean(seconds)}  # fmt: skip


def first_check(model: Path, threads: int) -> list[dict]:
    """Seconds to put the shared instruction into the KV cache at start: evaluated (and saved), then restored
    from the saved state by a second backend, as a new process would."""
    import tempfile

    from guardsdk.backends.llamacpp import LlamaCppBackend
    from guardsdk.detectors.generative import shared_prefix
    from guardsdk.families import get_family

    prefix = shared_prefix(get_family("guardreasoner"))
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for how in ("evaluated (first start), state saved", "restored from the saved state (a later start)"):
            backend = LlamaCppBackend(model, n_threads=threads, prefix_states=folder)
            started = time.perf_counter()
            backend.warm(prefix)
            rows.append({"instruction": how, "seconds": time.perf_counter() - started})
            backend.close()
        size = sum(path.stat().st_size for path in Path(folder).glob("*.state"))
    return [{**row, "state_MiB": size / 2**20} for row in rows]


def table(rows: list[dict]) -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in rows:
        lines.append("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="GGUF for part 1 (default: the bundled guardreasoner-tiny)")
    parser.add_argument("--checks", type=int, default=40, help="part 1's prompt checks (0: skip part 1)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--shape-gguf", type=Path, help="a GuardReasoner-1B-shape GGUF for part 2")
    parser.add_argument("--build-shape", type=Path, metavar="DIR", help="build that GGUF in DIR, then run")
    parser.add_argument("--quant-types", nargs="*", metavar="TYPE",
                        help="also time these llama.cpp types (e.g. F16 Q8_0 Q4_0 Q4_K_M) of the 1B shape, made "
                        "from the F16 file beside --shape-gguf")  # fmt: skip
    args = parser.parse_args()
    from guardsdk.backends.llamacpp import LlamaCppBackend
    from guardsdk.detectors.resolve import bundled_tiny_path
    from guardsdk.families.guardreasoner.template import INSTRUCTION

    args.model = args.model or bundled_tiny_path()
    logging.getLogger("guardsdk").setLevel(logging.ERROR)  # no line per blocked check
    if args.build_shape:
        args.shape_gguf = build_shape(args.build_shape)
    if args.checks:
        prompts = sample_prompts(args.checks + WARM_UP)
        warm_up, prompts = prompts[:WARM_UP], prompts[WARM_UP:]
        print(f"## Part 1: end to end, {args.model.name}, {len(prompts)} prompt checks (after {WARM_UP} warm-up "
              f"checks), {args.threads} threads\n")  # fmt: skip
        print(table(end_to_end(args.model, warm_up, prompts, args.threads)))
    if args.shape_gguf:
        costs = component_costs(args.shape_gguf, args.threads)
        tokenizer = LlamaCppBackend(args.shape_gguf, n_threads=1, vocab_only=True)
        checks = published_checks(tokenizer, PUBLISHED_PROMPT_SETS)
        others = published_checks(tokenizer, PUBLISHED_RESPONSE_SETS)
        print(f"\n## Part 2: {args.shape_gguf.name}, component costs (s), {args.threads} threads\n")
        print(table([costs]))
        print("\nverify k / one step: " + ", ".join(f"k={k} {costs[f'verify_{k}'] / costs['step']:.2f}x"
                                                  for k in (2, 4, 8)))  # fmt: skip
        medians = {k: statistics.median(c[k] for c in checks) for k in ("user", "out", "task1")}
        print(f"\n## Part 2: modelled seconds per prompt check, {len(checks)} published 1B outputs "
              f"(median tokens: {medians})\n")  # fmt: skip
        instruction, lead = len(tokenizer.input_ids(INSTRUCTION + "\n")), len(tokenizer.tokenize(answer_lead()))
        print(table(modelled(costs, checks, others, instruction, lead)))
        print("\n## Part 2: stopping a prompt check at its last needed answer line (not shipped)\n")
        print(table([answer_tail(tokenizer, PUBLISHED_PROMPT_SETS)]))
    if args.shape_gguf:
        print(f"\n## Part 2: verdict-first measured on {args.shape_gguf.name}\n")
        prompts = sample_prompts(61, PUBLISHED_PROMPT_SETS)  # the prompts behind the modelled rows above
        print(table([verdict_first_measured(args.shape_gguf, prompts, args.threads)]))
        print(f"\n## Part 2: the first check after start, {args.shape_gguf.name}\n")
        print(table(first_check(args.shape_gguf, args.threads)))
    if args.shape_gguf and args.quant_types:
        print(f"\n## Part 3: llama.cpp types of the 1B shape, {args.threads} threads\n")
        print(table(quant_types(args.shape_gguf.with_name("gr1b-shape-f16.gguf"), args.quant_types, args.threads)))


if __name__ == "__main__":
    main()
