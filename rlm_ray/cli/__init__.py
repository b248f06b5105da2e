"""The `rlm-ray` command (also `python -m rlm_ray`).

    rlm-ray run --model M --context PATH|- --query TEXT [--trace FILE.jsonl|FILE.parquet] [options]
    rlm-ray replay FILE.jsonl --context NEW [--model M] [--api-base URL] [options of run]
    rlm-ray trace FILE [--html OUT.html]
    rlm-ray ingest PATH --out FILE.parquet
    rlm-ray chat --model M --context PATH [options of run]   follow-up questions, one per line
    rlm-ray run --model local --context examples/... --query TEXT      (offline, no key)

Stdout carries only the answer (or, with --json, one JSON object with `answer`, `usage`,
`timings`); everything else goes to stderr: live progress on a terminal and a one-line summary
at the end (none of it with --quiet). Exit codes: 0 an answer; 1 an error, with a one-line
message (`chat`: a question failed); 2 a usage mistake on the command line; 130 Ctrl-C.

    options.py   the parsers             run.py    run, replay, a saved program; exit codes
    chat.py      chat                    files.py  --context, trace, ingest
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rlm_ray.cli.chat import chat_command
from rlm_ray.cli.files import ingest_command, read_context, trace_command
from rlm_ray.cli.options import build_parser, program_parser
from rlm_ray.cli.run import (
    EXIT_ANSWER,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    dispatch_work,
    replay_command,
    run_command,
    run_program,
)

__all__ = [
    "EXIT_ANSWER",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_USAGE",
    "build_parser",
    "main",
    "program_main",
    "read_context",
]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    answer_out = sys.stdout
    if args.command in ("run", "replay", "chat"):
        # subtle: Ray prints worker and raylet log lines ("(raylet) WARNING: ...") on whatever
        # sys.stdout is when they arrive, from a thread, and flushes leftovers at exit. The
        # answer must be alone on stdout (users pipe it), so a run sends everything else to
        # stderr: until exit when main() owns the process (argv None), else until it returns.
        sys.stdout = sys.stderr
    try:
        return dispatch_work(lambda: _command(args, answer_out))
    finally:
        if argv is not None:
            sys.stdout = answer_out


def _command(args: argparse.Namespace, answer_out: Any) -> int:
    if args.command == "run":
        return run_command(args, answer_out)
    if args.command == "replay":
        return replay_command(args, answer_out)
    if args.command == "chat":
        return chat_command(args, answer_out)
    return {"ingest": ingest_command, "trace": trace_command}[args.command](args)


def program_main(
    program: Any, *, context: Any = None, api_base: str | None = None, argv: Any = None
) -> int:
    """What a saved program's script (`Program.save`) runs: `rlm-ray replay`'s options,
    the context as `--context PATH` or the first argument (default: the script's CONTEXT)."""
    parser = program_parser()
    args = parser.parse_args(argv)
    args.context = args.context or args.context_path or context
    if args.context is None:
        parser.error("the new data is needed: --context PATH (or set CONTEXT in the script)")
    args.api_base = args.api_base or api_base
    answer_out = sys.stdout
    sys.stdout = sys.stderr  # the answer alone on stdout, as `rlm-ray run` (see main)
    try:
        return dispatch_work(lambda: run_program(program, args, answer_out))
    finally:
        if argv is not None:
            sys.stdout = answer_out
