"""The arguments of the ``guardsdk`` commands."""

from __future__ import annotations

import argparse
from collections.abc import Iterable

from guardsdk import __version__
from guardsdk.detectors.classifier import CLASSIFIER
from guardsdk.families import family_names
from guardsdk.guard import DEFAULT_MAX_INPUT_TOKENS, DEFAULT_TIMEOUT_S, MODES
from guardsdk.policy import LongInput
from guardsdk.scan.sources import FORMATS
from guardsdk.scan.writers import OUTPUT_FORMATS
from guardsdk.service.config import OnBlock
from guardsdk.service.logs import LOG_FORMATS
from guardsdk.verdict import TASKS


def threshold_items(items: Iterable[str]) -> dict[str, float]:
    """``--threshold TASK=P`` items as ``{task: p}`` (``Policy`` checks the task and range); ``ValueError`` in one
    line for an item that is not ``TASK=P``. ``scan`` and ``serve`` (its flags, variable and file) read
    thresholds through this."""
    thresholds = {}
    for item in items:
        task, sep, value = item.partition("=")
        try:
            p = float(value if sep else "")
        except ValueError:
            raise ValueError(f"a threshold is TASK=P (e.g. prompt_harm=0.7), not {item!r}") from None
        if task.strip() in thresholds:
            raise ValueError(f"{task.strip()} has two thresholds ({thresholds[task.strip()]} and {p}): give one")
        thresholds[task.strip()] = p
    return thresholds


def build_parser() -> argparse.ArgumentParser:
    """The ``guardsdk`` parser, one subcommand a command."""
    parser = argparse.ArgumentParser(prog="guardsdk", description="Reasoning-based LLM safety guards.")
    parser.add_argument("--version", action="version", version=f"guardsdk {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_check_parser(commands)
    _add_eval_parser(commands)
    _add_serve_parser(commands)
    _add_convert_parser(commands)
    _add_scan_parser(commands)
    return parser


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
    serve = commands.add_parser(
        "serve",
        help="serve the guard over HTTP: a check API and a guarded OpenAI proxy",
        description="Every option is also a config file key (--foo-bar: foo_bar) and an environment variable "
        "(GUARDSDK_FOO_BAR); flags > environment > config file > defaults. See deploy/serve.toml and docs/deploy.md.",
    )
    serve.add_argument("--config", metavar="PATH", help="a TOML or YAML config file (also $GUARDSDK_CONFIG)")
    _add_model_arguments(serve, required=False)
    serve.add_argument("--host", help="address to listen on (not loopback: API keys needed); default 127.0.0.1")
    serve.add_argument("--port", type=int, help="default 8080")
    serve.add_argument(
        "--api-keys-file", metavar="PATH", help="bearer keys, one per line (also $GUARDSDK_API_KEYS, comma-separated)"
    )
    serve.add_argument("--upstream", metavar="URL", help="OpenAI-compatible base URL the proxy forwards to")
    serve.add_argument("--upstream-api-key", help="API key for --upstream (better: $GUARDSDK_UPSTREAM_API_KEY)")
    serve.add_argument(
        "--on-block",
        choices=[o.value for o in OnBlock],
        help="a blocked proxy call: an OpenAI error (400, content_blocked; the default) or a refusal completion",
    )
    serve.add_argument("--refusal", help="the text of a refusal completion")
    serve.add_argument("--gate", dest="gates", action="append", choices=TASKS, help="tasks that block (repeatable)")
    serve.add_argument(
        "--check-gate",
        dest="check_gates",
        action="append",
        choices=TASKS,
        help="the check API's gates where a request names none (repeatable; default: --gate)",
    )
    serve.add_argument(
        "--proxy-gate", dest="proxy_gates", action="append", choices=TASKS, help="the proxy's gates (default: --gate)"
    )
    serve.add_argument(
        "--threshold",
        dest="thresholds",
        action="append",
        metavar="TASK=P",
        help="a task is unsafe where its score is at least P, whatever its label (repeatable)",
    )
    serve.add_argument("--max-body-bytes", type=int)
    serve.add_argument("--max-concurrency", type=int)
    serve.add_argument("--max-queue", type=int)
    serve.add_argument("--cache-entries", type=int, help="0: no verdict cache")
    serve.add_argument("--cache-ttl", type=float, help="seconds")
    serve.add_argument("--log-content", action="store_true", help="put the checked text of blocked calls in logs")
    serve.add_argument("--log-format", choices=LOG_FORMATS, help="log lines: one JSON object each (default), or text")
    serve.add_argument(
        "--pass-field",
        dest="pass_fields",
        action="append",
        metavar="NAME",
        help="a field the guard does not check, forwarded all the same (repeatable): a body field beyond OpenAI's "
        "own (e.g. top_k), or a message / content-part key (messages.KEY, messages.content.KEY)",
    )
    serve.add_argument("--expose-reasoning", action="store_true",
                       help="show the guard's output and reasoning in answers about blocked checks (they may quote "
                       "or continue the blocked text)")  # fmt: skip
    serve.add_argument("--batch-max-items", type=int,
                       help="micro-batching: concurrent checks per detector call (32; 1: off)")  # fmt: skip
    serve.add_argument("--batch-window-ms", type=float, help="how long a batch's first check waits for others (2)")
    serve.add_argument("--stream-holdback-chars", type=int,
                       help="a stream is checked, and released, every N characters (default 600)")  # fmt: skip
    serve.add_argument("--otlp-endpoint", metavar="URL",
                       help="send check spans to this OTLP/HTTP collector (guardsdk[tracing])")  # fmt: skip
    # Defaults live in the settings (guardsdk.cli.serve_settings): a flag not given leaves the key to the
    # environment, the config file, or the default.
    for action in serve._actions:  # (argparse has no public call that changes every argument's default)
        action.default = argparse.SUPPRESS


def _add_convert_parser(commands: argparse._SubParsersAction) -> None:
    convert = commands.add_parser("convert", help="convert a Hugging Face model to a (quantized) GGUF file")
    convert.add_argument("source", help="a Hugging Face model folder, or a hub id (downloaded: needs the hub)")
    convert.add_argument("--quant", default="Q4_K_M", help="Q4_K_M (default), Q4_0, Q8_0, F16, ...")
    convert.add_argument("--out", metavar="PATH", help="the GGUF file (default: <name>-<quant>.gguf here)")


def _add_scan_parser(commands: argparse._SubParsersAction) -> None:
    scan = commands.add_parser(
        "scan",
        help="check every row of a JSONL, CSV or Parquet file (or a datasets save_to_disk folder); resumable",
        description="Writes the input's rows with guard_* verdict columns into --out (rows.jsonl or rows/*.parquet), "
        "then summary.json, report.md and report.png. An interrupted scan resumes where it stopped; a rerun with "
        "other settings is refused. See docs/scan.md.",
    )
    scan.add_argument("input", help="a .jsonl, .csv or .parquet file, or a Hugging Face save_to_disk folder")
    scan.add_argument("--out", metavar="DIR", required=True, help="the output folder (resumed if it holds this scan)")
    _add_model_arguments(scan, required=False)
    scan.add_argument(
        "--gate",
        action="append",
        choices=TASKS,
        help="tasks that decide (repeatable; default: prompt_harm and response_harm)",
    )
    scan.add_argument(
        "--threshold",
        action="append",
        metavar="TASK=P",
        help="a task is unsafe where its score is at least P, whatever its label (repeatable)",
    )
    scan.add_argument(
        "--long-input",
        choices=[m.value for m in LongInput],
        default=LongInput.WINDOWS.value,
        help="text over the guard's budget: checked in windows (default), undecided, or elided",
    )
    scan.add_argument("--prompt-column", default=None, help="the column of prompts (default: prompt)")
    scan.add_argument(
        "--response-column",
        default=None,
        help="the column of responses (default: response, where a row has it; named: every row needs it)",
    )
    scan.add_argument(
        "--response-optional",
        action="store_true",
        help="a row whose response is missing, null or empty is checked prompt-only (not a bad row)",
    )
    scan.add_argument("--prompt-only", action="store_true", help="check prompts only, whatever columns there are")
    scan.add_argument(
        "--messages-column",
        help="a column of OpenAI message lists (or JSON strings of them): the last "
        "assistant message is the response, the rest the prompt",
    )
    scan.add_argument("--input-format", choices=FORMATS, help="the input's format (default: from its suffix)")
    scan.add_argument(
        "--format",
        choices=OUTPUT_FORMATS,
        dest="output_format",
        help="the output's format (default: parquet for a Parquet or datasets input, else jsonl)",
    )
    scan.add_argument("--reasoning", action="store_true", help="also write the guard's reasoning (guard_reasoning)")
    scan.add_argument(
        "--batch-size", type=int, default=16, help="rows per guard call (default 16; recorded: a resume keeps it)"
    )
    scan.add_argument("--limit", type=int, default=None, help="the first N rows only (a later run can go on)")
    scan.add_argument("--sample", type=int, default=None, help="a seeded uniform sample of N rows, in input order")
    scan.add_argument("--seed", type=int, default=0, help="the seed of --sample (default 0)")
    scan.add_argument("--no-progress", action="store_true", help="no progress bar")
    scan.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: this process; ray: checks on a Ray cluster (guardsdk[scan])",
    )
    scan.add_argument("--ray-address", metavar="ADDR", help="the Ray cluster (default: a local Ray, or $RAY_ADDRESS)")
    scan.add_argument("--ray-concurrency", type=int, help="Ray actors, each with its own guard (default: one a CPU)")
    scan.add_argument("--ray-batch-size", type=int, help="rows per Ray actor call (default: --batch-size)")


__all__ = ["build_parser"]
