"""The ``guardsdk`` command line: ``check``, ``eval``, ``serve`` and ``convert``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from guardsdk import __version__
from guardsdk.detectors.classifier import CLASSIFIER
from guardsdk.errors import GuardError, describe
from guardsdk.families import family_names, get_family
from guardsdk.guard import DEFAULT_MAX_INPUT_TOKENS, DEFAULT_TIMEOUT_S, MODES, Guard
from guardsdk.policy import LongInput, OnUnsafe, Policy
from guardsdk.service.config import OnBlock, ServiceConfig
from guardsdk.texts.validation import validate_pair
from guardsdk.verdict import TASKS, Verdict

EXIT_SAFE, EXIT_UNSAFE, EXIT_UNDECIDED = 0, 1, 2


class UsageError(Exception):
    """A command-line mistake: reported in one line, exit code 2."""


def _read_text(inline: str | None, path: str | None, name: str) -> str | None:
    if inline is not None and path is not None:
        raise UsageError(f"give --{name} or --{name}-file, not both")
    try:
        if path == "-":
            return sys.stdin.read()
        if path is not None:
            with open(path, encoding="utf-8") as handle:
                return handle.read()
    except OSError as exc:
        raise UsageError(f"cannot read --{name}-file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"--{name}-file {path} is not UTF-8 text (byte {exc.start})") from None
    return inline


def _add_model_arguments(parser: argparse.ArgumentParser, *, required: bool) -> None:
    source = parser.add_mutually_exclusive_group(required=required)
    source.add_argument("--gguf", metavar="PATH", help="a GGUF model file (llama.cpp)")
    source.add_argument("--model", metavar="ID_OR_DIR", help="a Hugging Face model id or folder")
    source.add_argument(
        "--server",
        "--guard-server",
        metavar="URL",
        dest="server",
        help="an OpenAI-compatible server running the guard model, e.g. http://127.0.0.1:8000/v1",
    )
    parser.add_argument("--server-model", metavar="NAME", help="the model name on --server")
    parser.add_argument(
        "--family",
        choices=[*family_names(), CLASSIFIER],
        default=None,
        help="the guard family of the model (default: guardreasoner); classifier: --model is a heads folder "
        "(default: the bundled heads)",
    )
    parser.add_argument("--api-key", default="EMPTY", help="API key for --server")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="default: the family's output budget")
    parser.add_argument("--max-input-tokens", type=int, default=DEFAULT_MAX_INPUT_TOKENS)
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="deadline of one check in seconds; undecided past it"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="CPU threads of a GGUF model (default: half the cores)"
    )
    parser.add_argument(
        "--mode",
        choices=MODES,
        default="single",
        help="single: the model reasons in full; verdict_first: answers read by probability after the input "
        "(check: reasoning where blocked or uncertain; eval: never); needed_tasks: reasoning about the gated "
        "tasks only; cascade: the bundled classifier first (see docs/speed.md, docs/cascade.md)",
    )


def _add_check_parser(commands: argparse._SubParsersAction) -> None:
    check = commands.add_parser(
        "check", help="check a prompt (and a response); without a model option, Guard()'s default model"
    )
    _add_model_arguments(check, required=False)
    check.add_argument("--prompt", help="the user prompt")
    check.add_argument("--prompt-file", metavar="PATH", help="read the prompt from a file ('-' for stdin)")
    check.add_argument("--response", help="the AI response to check with the prompt")
    check.add_argument("--response-file", metavar="PATH", help="read the response from a file ('-' for stdin)")
    check.add_argument("--gate", action="append", choices=TASKS, help="tasks that decide the exit code (repeatable)")
    check.add_argument("--json", action="store_true", help="print one JSON object")


def _add_eval_parser(commands: argparse._SubParsersAction) -> None:
    evaluate = commands.add_parser("eval", help="run a guard over GuardReasoner benchmarks, or rescore predictions")
    _add_model_arguments(evaluate, required=False)
    evaluate.add_argument(
        "--rescore", metavar="DIR", help="score existing <Benchmark>/generated_predictions.jsonl files"
    )
    evaluate.add_argument("--benchmarks-dir", metavar="DIR", help="folder of the benchmark JSON files")
    evaluate.add_argument("--benchmark", action="append", help="a benchmark name (repeatable; default: all)")
    evaluate.add_argument("--limit", type=int, default=None, help="first N items of each benchmark")
    evaluate.add_argument("--sample", type=int, default=None, help="a seeded random N items of each benchmark")
    evaluate.add_argument("--batch-size", type=int, default=8)
    evaluate.add_argument("--out", metavar="DIR", default="runs/eval", help="predictions and report folder")
    evaluate.add_argument("--json", metavar="PATH", help="also write the scores as JSON here")
    evaluate.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_serve_parser(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser("serve", help="serve the guard over HTTP: a check API and a guarded OpenAI proxy")
    _add_model_arguments(serve, required=False)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (not loopback: API keys needed)")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument(
        "--api-keys-file", metavar="PATH", help="bearer keys, one per line (also $GUARDSDK_API_KEYS, comma-separated)"
    )
    serve.add_argument("--upstream", metavar="URL", help="OpenAI-compatible base URL the proxy forwards to")
    serve.add_argument("--upstream-api-key", default=os.environ.get("GUARDSDK_UPSTREAM_API_KEY", "EMPTY"),
                       help="API key for --upstream (default: $GUARDSDK_UPSTREAM_API_KEY)")  # fmt: skip
    serve.add_argument(
        "--on-block",
        choices=[o.value for o in OnBlock],
        default="error",
        help="a blocked proxy call: an OpenAI error (400, content_blocked) or a refusal completion",
    )
    serve.add_argument("--refusal", default=ServiceConfig.refusal, help="the text of a refusal completion")
    serve.add_argument("--gate", action="append", choices=TASKS, help="tasks that block (repeatable)")
    serve.add_argument("--max-body-bytes", type=int, default=ServiceConfig.max_body_bytes)
    serve.add_argument("--max-concurrency", type=int, default=ServiceConfig.max_concurrency)
    serve.add_argument("--max-queue", type=int, default=ServiceConfig.max_queue)
    serve.add_argument("--cache-entries", type=int, default=ServiceConfig.cache_entries, help="0: no verdict cache")
    serve.add_argument("--cache-ttl", type=float, default=ServiceConfig.cache_ttl_s, help="seconds")
    serve.add_argument("--log-content", action="store_true", help="put the checked text of blocked calls in logs")
    serve.add_argument(
        "--pass-field",
        action="append",
        default=[],
        metavar="NAME",
        help="a field the guard does not check, forwarded all the same (repeatable): a body field beyond OpenAI's "
        "own (e.g. top_k), or a message / content-part key (messages.KEY, messages.content.KEY)",
    )
    serve.add_argument("--expose-reasoning", action="store_true",
                       help="show the guard's output and reasoning in answers about blocked checks (they may quote "
                       "or continue the blocked text)")  # fmt: skip


def _add_convert_parser(commands: argparse._SubParsersAction) -> None:
    convert = commands.add_parser("convert", help="convert a Hugging Face model to a (quantized) GGUF file")
    convert.add_argument("source", help="a Hugging Face model folder, or a hub id (downloaded: needs the hub)")
    convert.add_argument("--quant", default="Q4_K_M", help="Q4_K_M (default), Q4_0, Q8_0, F16, ...")
    convert.add_argument("--out", metavar="PATH", help="the GGUF file (default: <name>-<quant>.gguf here)")


def _load_guard(args: argparse.Namespace, policy: Policy | None = None, concurrency: int = 8) -> Guard:
    if policy is None:  # eval measures the model on the paper's protocol: long inputs cut as in its 2048 cutoff
        policy = Policy(on_unsafe=OnUnsafe.ANNOTATE, long_input=LongInput.ELIDE)
    common = {
        "family": args.family,
        "policy": policy,
        "max_new_tokens": args.max_new_tokens,
        "max_input_tokens": args.max_input_tokens,
        "timeout_s": args.timeout,
        "mode": args.mode,
    }
    if args.mode == "verdict_first" and args.command == "eval":
        common["reason_when"] = ()  # eval measures the forced answers themselves
    if args.family == CLASSIFIER:
        if args.gguf or args.server:
            raise UsageError("--family classifier takes a heads folder as --model (or none: the bundled heads)")
        return Guard(args.model, **common, threads=args.threads)
    if args.gguf:
        n_ctx = args.max_input_tokens + (args.max_new_tokens or get_family(args.family).max_new_tokens)
        return Guard.from_gguf(args.gguf, backend_kwargs={"n_ctx": n_ctx, "n_threads": args.threads}, **common)
    if args.model:
        return Guard.from_pretrained(args.model, **common)
    if not args.server:
        return Guard(threads=args.threads, **common)  # the default model: see guardsdk.detectors.resolve
    if not args.server_model:
        raise UsageError("--server needs --server-model")
    server_kwargs = {"api_key": args.api_key, "max_concurrency": concurrency}
    return Guard.from_server(args.server, args.server_model, backend_kwargs=server_kwargs, **common)


def exit_code(verdict: Verdict) -> int:
    """0 safe, 1 unsafe, 2 undecided (and 2 for every failure of the command itself)."""
    decision = verdict.decision
    if decision is None or (decision.undecided and not decision.unsafe):
        return EXIT_UNDECIDED
    return EXIT_UNSAFE if decision.unsafe else EXIT_SAFE


def render_text(verdict: Verdict) -> str:
    """A human-readable report of a verdict."""
    lines = []
    names = {"prompt_harm": "prompt harmfulness", "refusal": "refusal", "response_harm": "response harmfulness"}
    for task in TASKS:
        score = f" (p={verdict.scores[task]:.3f})" if task in verdict.scores else ""
        lines.append(f"{names[task]:>22}: {verdict.labels.get(task) or 'undecided'}{score}")
    if verdict.categories:
        lines.append(f"{'categories':>22}: {', '.join(verdict.categories)}")
    decision = verdict.decision
    lines.append(f"{'decision':>22}: {decision.reason if decision else 'none'}")
    lines.append(
        f"{'model':>22}: {verdict.model} ({verdict.tokens_in} tokens in, {verdict.tokens_out} out, "
        f"{verdict.latency_s:.2f}s, parse {verdict.parse_status.value}"
        f"{', input cut' if verdict.input_truncated else ''})"
    )
    for task in TASKS:
        if verdict.reasoning.get(task):
            lines.append(f"\n# reasoning: {names[task]}\n{verdict.reasoning[task]}")
    if not verdict.reasoning and verdict.raw.startswith(("no reasoning", "verdict-first")):
        lines.append(f"\n{verdict.raw}")
    if verdict.error:
        lines.append(f"\nerror: {verdict.error}")
    return "\n".join(lines)


def run_check(args: argparse.Namespace) -> int:
    prompt = _read_text(args.prompt, args.prompt_file, "prompt")
    response = _read_text(args.response, args.response_file, "response")
    if prompt is None:
        raise UsageError("give --prompt or --prompt-file")
    validate_pair(prompt, response)  # before loading any model
    gates = frozenset(args.gate) if args.gate else Policy().gates
    with _load_guard(args, Policy(gates=gates, on_unsafe=OnUnsafe.ANNOTATE)) as guard:
        verdict = guard.check(prompt, response)
    print(json.dumps(verdict.to_json(), ensure_ascii=False) if args.json else render_text(verdict))
    return exit_code(verdict)


def run_eval(args: argparse.Namespace) -> int:
    from guardsdk.eval.benchmarks import BENCHMARKS, benchmark
    from guardsdk.eval.evaluation import evaluate
    from guardsdk.eval.report import load_prediction_dir, load_run_settings, to_json, write_report

    if args.rescore:
        folder = Path(args.rescore)
    else:
        if not (args.gguf or args.model or args.server or args.family == CLASSIFIER):
            raise UsageError("eval: give a model (--gguf, --model, --server, --family classifier) or --rescore DIR")
        if not args.benchmarks_dir:
            raise UsageError("eval: give --benchmarks-dir")
        specs = [benchmark(name) for name in args.benchmark] if args.benchmark else list(BENCHMARKS)
        folder = Path(args.out)
        with _load_guard(args, concurrency=args.batch_size) as guard:
            evaluate(guard, args.benchmarks_dir, folder, benchmarks=specs, limit=args.limit, sample=args.sample,
                     batch_size=args.batch_size, progress=not args.no_progress)  # fmt: skip
    models = load_prediction_dir(folder)
    settings = load_run_settings(folder)
    paths = write_report(models, args.out, settings)
    if args.json:
        Path(args.json).write_text(json.dumps(to_json(models, settings), indent=1), encoding="utf-8")
    print(paths["markdown"].read_text(encoding="utf-8"))
    print(f"report: {paths['markdown']}, {paths['json']}, {paths['chart']}")
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from guardsdk.service import serve
    from guardsdk.service.auth import load_api_keys, refuse_open_service

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = ServiceConfig(
        host=args.host, port=args.port, api_keys=load_api_keys(args.api_keys_file), max_body_bytes=args.max_body_bytes,
        request_timeout_s=args.timeout, max_concurrency=args.max_concurrency, max_queue=args.max_queue,
        upstream=args.upstream, upstream_api_key=args.upstream_api_key, on_block=args.on_block, refusal=args.refusal,
        log_content=args.log_content, cache_entries=args.cache_entries, cache_ttl_s=args.cache_ttl,
        pass_fields=frozenset(args.pass_field), expose_reasoning=args.expose_reasoning,
    )  # fmt: skip
    refuse_open_service(config.host, config.api_keys)  # before loading a model; create_app warns on loopback
    gates = frozenset(args.gate) if args.gate else Policy().gates
    serve(_load_guard(args, Policy(gates=gates), concurrency=args.max_concurrency), config)
    return 0


def run_convert(args: argparse.Namespace) -> int:
    from guardsdk.tools.gguf_export import hf_to_gguf

    print(hf_to_gguf(args.source, args.out, args.quant))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="guardsdk", description="Reasoning-based LLM safety guards.")
    parser.add_argument("--version", action="version", version=f"guardsdk {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_check_parser(commands)
    _add_eval_parser(commands)
    _add_serve_parser(commands)
    _add_convert_parser(commands)
    runners = {"check": run_check, "eval": run_eval, "serve": run_serve, "convert": run_convert}
    try:
        args = parser.parse_args(argv)
        return runners[args.command](args)
    except SystemExit as exc:  # argparse: --help exits 0, a usage error 2 (never 1, which means "unsafe")
        return EXIT_SAFE if exc.code in (0, None) else EXIT_UNDECIDED
    except UsageError as exc:
        print(f"guardsdk: {exc}", file=sys.stderr)
        return EXIT_UNDECIDED
    except (GuardError, ValueError, OSError) as exc:
        print(f"guardsdk: {describe(exc)}", file=sys.stderr)
        return EXIT_UNDECIDED
    except KeyboardInterrupt:
        print("guardsdk: interrupted", file=sys.stderr)
        return EXIT_UNDECIDED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
