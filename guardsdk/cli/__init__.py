"""The ``guardsdk`` command line: ``check``, ``eval``, ``serve``, ``convert`` and ``scan`` (their arguments:
``arguments``)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from guardsdk.cli.arguments import build_parser, threshold_items
from guardsdk.detectors.classifier import CLASSIFIER
from guardsdk.errors import GuardError, describe
from guardsdk.families import get_family
from guardsdk.guard import Guard
from guardsdk.policy import LongInput, OnUnsafe, Policy
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
    from guardsdk.eval.report import load_prediction_dir, load_run_settings, to_json
    from guardsdk.eval.report_files import write_report

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
    from guardsdk.cli.serve_settings import CONFIG_ENV, SettingsError, load_settings
    from guardsdk.service import serve
    from guardsdk.service.auth import refuse_open_service
    from guardsdk.service.logs import LOG_FORMATS, Fields, configure_logging

    flags = {key: value for key, value in vars(args).items() if key not in ("command", "config")}
    config_file = getattr(args, "config", None) or os.environ.get(CONFIG_ENV) or None
    early = flags.get("log_format") or os.environ.get("GUARDSDK_LOG_FORMAT", "").strip().lower()
    configure_logging(early if early in LOG_FORMATS else "json", replace=True)  # the lines before the settings
    try:
        settings, origin = load_settings(flags, config_file)
        config, policy = settings.service_config(), settings.policy()
    except (SettingsError, ValueError) as exc:  # a bad key or value, wherever it came from
        raise UsageError(str(exc)) from None
    configure_logging(config.log_format, replace=True)
    refuse_open_service(config.host, config.api_keys)  # before loading a model; create_app warns on loopback
    logging.getLogger("guardsdk.service").info(Fields(settings.logged(origin, config_file)))  # secrets redacted
    serve(_load_guard(settings.guard_arguments(), policy, concurrency=config.max_concurrency), config)
    return 0


def run_convert(args: argparse.Namespace) -> int:
    from guardsdk.tools.gguf_export import hf_to_gguf

    print(hf_to_gguf(args.source, args.out, args.quant))
    return 0


def _thresholds(items: Sequence[str] | None) -> dict[str, float]:
    try:
        return threshold_items(items or ())
    except ValueError as exc:
        raise UsageError(str(exc)) from None


#: The exit code of an interrupted scan (as a shell gives a command that Ctrl-C ended).
EXIT_INTERRUPTED = 130


def run_scan(args: argparse.Namespace) -> int:
    """``guardsdk scan``: exit 0 when the scan ran to the end (its decisions are data, not the exit code), 130 when
    interrupted (Ctrl-C; rerun the same command to resume), 2 for a usage mistake."""
    import csv
    import functools

    from guardsdk.scan import ColumnMap, scan

    if (args.sample is not None and args.sample < 1) or (args.limit is not None and args.limit < 0):
        raise UsageError("--sample must be at least 1 and --limit at least 0")
    if args.batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    if args.no_progress:  # no bar at all: Hugging Face's, as the model loads, neither
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    if args.prompt_only and (args.response_column or args.response_optional):
        raise UsageError("give --prompt-only or --response-column / --response-optional, not both")
    if args.messages_column and (args.prompt_column or args.response_column or args.prompt_only):
        raise UsageError("give --messages-column or --prompt-column / --response-column / --prompt-only, not both")
    if args.engine == "ray":  # before any model loads
        from guardsdk.scan.ray_engine import import_ray

        try:
            import_ray()
        except RuntimeError as exc:
            raise UsageError(str(exc)) from None
    response = None if args.prompt_only else args.response_column or "response"
    required = bool(args.response_column) and not args.response_optional
    columns = ColumnMap(args.prompt_column or "prompt", response, args.messages_column, response_required=required)
    policy = Policy(gates=frozenset(args.gate or Policy().gates), on_unsafe=OnUnsafe.ANNOTATE,
                    long_input=LongInput(args.long_input), thresholds=_thresholds(args.threshold))  # fmt: skip
    ray_options = {key: value for key, value in (("address", args.ray_address), ("concurrency", args.ray_concurrency),
                   ("batch_size", args.ray_batch_size)) if value is not None}  # fmt: skip
    # A picklable factory (a Namespace and a Policy pickle): the Ray engine builds a guard in each worker; the scan
    # builds one (and closes it) after it has opened the input, so a bad input costs no model load.
    factory = functools.partial(_load_guard, args, policy, args.batch_size)
    try:
        summary = scan(args.input, args.out, factory, columns=columns, input_format=args.input_format,
                       output_format=args.output_format, reasoning=args.reasoning, batch_size=args.batch_size,
                       limit=args.limit, sample=args.sample, seed=args.seed, engine=args.engine,
                       ray_options=ray_options or None, progress=not args.no_progress)  # fmt: skip
    except KeyboardInterrupt:  # the rows written are kept, report.md says how far it got
        print(f"guardsdk: interrupted\nguardsdk: rerun the same command to resume ({args.out})", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (GuardError, ValueError, OSError, UsageError):
        raise
    except (RuntimeError, TypeError, LookupError, RecursionError, csv.Error) as exc:  # the scan's own (Ray's too)
        raise UsageError(f"scan stopped: {type(exc).__name__}: {exc}") from None
    print(summary.text())
    print(f"report: {Path(args.out) / 'report.md'}, {Path(args.out) / 'summary.json'}")
    return 0


def _one_line(message: str) -> str:
    """An error message on one line (a multi-line message's lines joined)."""
    return " ".join(line.strip() for line in message.splitlines() if line.strip()) if "\n" in message else message


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    runners = {"check": run_check, "eval": run_eval, "serve": run_serve, "convert": run_convert, "scan": run_scan}
    try:
        args = parser.parse_args(argv)
        return runners[args.command](args)
    except SystemExit as exc:  # argparse: --help exits 0, a usage error 2 (never 1, which means "unsafe")
        return EXIT_SAFE if exc.code in (0, None) else EXIT_UNDECIDED
    except UsageError as exc:
        print(f"guardsdk: {_one_line(str(exc))}", file=sys.stderr)
        return EXIT_UNDECIDED
    except (GuardError, ValueError, OSError) as exc:
        said = str(exc) if type(exc) is ValueError and str(exc) else describe(exc)  # a bad value: its message is it
        print(f"guardsdk: {_one_line(said)}", file=sys.stderr)
        return EXIT_UNDECIDED
    except KeyboardInterrupt:
        print("guardsdk: interrupted", file=sys.stderr)
        return EXIT_UNDECIDED
    finally:
        if argv is None:  # the command line: its work is done, so a Ctrl-C while Python shuts down is ignored
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # (not a traceback from some module's teardown)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
