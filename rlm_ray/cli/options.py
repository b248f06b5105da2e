"""The command line's options: one parser for `rlm-ray`, and the one a saved program's script
uses (`program_parser`). No work here: `commands.py` and `chat.py` run what these parse."""

from __future__ import annotations

import argparse
import dataclasses

from rlm_ray.config import RLMConfig
from rlm_ray.prompting.prompts import PROMPTS

# The defaults shown in `--help` are RLMConfig's own: the CLI passes no default of its own.
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(RLMConfig)}

REPLAY_CONTEXT_HELP = "the new data, read as by `run --context` (file, .json, -, or a corpus)"
_TRACE_HELP = "write the call tree to FILE.jsonl or FILE.parquet (see `rlm-ray trace`)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlm-ray", description="Recursive Language Models on Ray."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="answer a query over a context")
    add_model_options(run, required=True)
    run.add_argument(
        "--context",
        required=True,
        metavar="PATH",
        help="a text file (the context is its text), a .json file (parsed), - (stdin), or a "
        "corpus: a directory (read recursively), a .jsonl, .csv or .parquet file, one document "
        "per file, line or row (see --chunk-by)",
    )
    run.add_argument("--query", required=True, help="the question to answer")
    add_run_options(run)
    replay = commands.add_parser(
        "replay",
        help="re-run a recorded run's code on new data, with no root-model calls (a program)",
    )
    replay.add_argument("file", help="a trace written by `run --trace` (.jsonl or .parquet)")
    add_model_options(replay, required=False)
    replay.add_argument("--context", required=True, metavar="PATH", help=REPLAY_CONTEXT_HELP)
    add_replay_options(replay)
    _add_chat(commands)
    trace = commands.add_parser("trace", help="show a trace file: call tree, or an HTML page")
    trace.add_argument(
        "file", help="a trace written by `run --trace` or `chat --trace` (.jsonl or .parquet)"
    )
    trace.add_argument("--html", metavar="OUT.html", help="write a self-contained HTML page")
    ingest = commands.add_parser("ingest", help="read a corpus once into a Parquet document table")
    ingest.add_argument("path", help="a directory, JSONL, CSV, Parquet or text file")
    ingest.add_argument("--out", required=True, help="the Parquet file to write")
    ingest.add_argument("--include", action="append", default=[], help="glob of files to read")
    ingest.add_argument("--exclude", action="append", default=[], help="glob of files to skip")
    ingest.add_argument("--text-field", help="the text column of JSONL/CSV/Parquet input")
    return parser


def _add_chat(commands: argparse._SubParsersAction) -> None:
    chat = commands.add_parser(
        "chat",
        help="a session: questions from stdin, one per line, over one context and one REPL",
        description="Ask follow-up questions over one context: each line of stdin is a question "
        "(a pipe or a terminal), each answer goes to stdout; the REPL's variables persist from "
        "question to question. Ends at end of input or on a line `exit` or `quit`.",
    )
    add_model_options(chat, required=True)
    chat.add_argument(
        "--context",
        required=True,
        metavar="PATH",
        help="a text file, a .json file (parsed), or a corpus: a directory, a .jsonl, .csv or "
        ".parquet file (stdin carries the questions)",
    )
    add_run_options(
        chat,
        trace_help="write each question's call tree to FILE.jsonl or FILE.parquet, one root "
        "per question, after each answer (see `rlm-ray trace`)",
    )


def add_model_options(run: argparse.ArgumentParser, *, required: bool) -> None:
    """--model, --sub-model, --models, --api-base, --api-key (a replay defaults to the recorded
    model and sub-model; it never allows a model the command line does not name)."""
    run.add_argument(
        "--model",
        required=required,
        help="litellm model string, e.g. openai/gpt-4o-mini; or local / local-small: a small model "
        'served by rlm-ray itself, offline (pip install "rlm-ray[local]")',
    )
    run.add_argument("--sub-model", help="model for llm_query and child calls (default: --model)")
    run.add_argument(
        "--models",
        metavar="M1,M2",
        help="further models the model's code may name in llm_query(..., model=...) (comma "
        "separated; --model and --sub-model always may, any other is refused)",
    )
    run.add_argument("--api-base", help="base URL of the model server (local servers, proxies)")
    run.add_argument("--api-key", help="API key (default: the provider's environment variable)")


def add_run_options(run: argparse.ArgumentParser, *, trace_help: str = _TRACE_HELP) -> None:
    """The options of a run besides its models, context and query (also `replay`'s and
    `chat`'s)."""
    run.add_argument(
        "--max-depth",
        type=int,
        default=_DEFAULTS["max_depth"],
        metavar="N",
        help="depth levels with a REPL: 1 = the root only, 0 = one plain model call "
        "(default: %(default)s)",
    )
    run.add_argument(
        "--max-iterations",
        type=int,
        default=_DEFAULTS["max_iterations"],
        metavar="N",
        help="model turns per call (default: %(default)s)",
    )
    run.add_argument(
        "--max-time",
        type=float,
        metavar="SECONDS",
        help="wall-clock deadline of the whole run (default: none)",
    )
    budget = run.add_argument_group("budgets of the whole call tree (default: none)")
    budget.add_argument(
        "--max-sub-calls", type=int, metavar="N", help="llm_query + recursive_llm calls"
    )
    budget.add_argument("--max-total-tokens", type=int, metavar="N", help="input + output tokens")
    budget.add_argument(
        "--max-cost-usd", type=float, metavar="USD", help="cost in USD (litellm's prices)"
    )
    rates = run.add_argument_group("rate limits per model, shared by the cluster (default: none)")
    rates.add_argument("--requests-per-minute", type=int, metavar="N", help="model calls")
    rates.add_argument("--tokens-per-minute", type=int, metavar="N", help="tokens, input + output")
    run.add_argument(
        "--chunk-by",
        choices=["chars", "tokens", "documents"],
        default=_DEFAULTS["chunk_by"],
        help="how a corpus is cut into chunks in the object store (default: %(default)s)",
    )
    run.add_argument(
        "--chunk-size",
        type=int,
        default=_DEFAULTS["chunk_size"],
        metavar="N",
        help="chars, tokens or documents per chunk (default: %(default)s)",
    )
    run.add_argument(
        "--address",
        help="Ray cluster address (default: RAY_ADDRESS, else a local Ray started for the run)",
    )
    run.add_argument(
        "--prompt",
        metavar="NAME",
        # not `choices`: an unknown name is RLM's one-line ConfigError (exit 1), like any setting
        help=f"prompt variant: {', '.join(PROMPTS)} (docs/prompts.md; default: small for local "
        "models, else paper)",
    )
    run.add_argument("--trace", metavar="FILE", help=trace_help)
    run.add_argument(
        "--json", action="store_true", help="print one JSON object: answer, usage, timings"
    )
    run.add_argument(
        "--cache", metavar="DIR", help="cache model calls in DIR: a re-run makes no model calls"
    )
    run.add_argument(
        "--quiet", action="store_true", help="no progress and no summary on stderr (errors only)"
    )


def add_replay_options(replay: argparse.ArgumentParser) -> None:
    add_run_options(replay)
    replay.set_defaults(max_depth=None)  # default: the recorded run's depth
    replay.add_argument(
        "--allow-effects",
        action="store_true",
        help="let `write` tools run again (a replay refuses them otherwise)",
    )


def program_parser() -> argparse.ArgumentParser:
    """The options of a saved program's script: `rlm-ray replay`'s, the context also as the
    first argument."""
    parser = argparse.ArgumentParser(description="Re-run a recorded rlm-ray program on new data.")
    parser.add_argument("context_path", nargs="?", metavar="CONTEXT", help=REPLAY_CONTEXT_HELP)
    add_model_options(parser, required=False)
    parser.add_argument("--context", metavar="PATH", help=REPLAY_CONTEXT_HELP)
    add_replay_options(parser)
    return parser
