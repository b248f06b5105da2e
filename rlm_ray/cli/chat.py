"""`rlm-ray chat`: questions from stdin, one per line, in one session; each answer on stdout.

A question that fails is reported on stderr and the chat goes on; the exit code is then 1 (0
if every question was answered, 130 on Ctrl-C). With --trace, the file holds one call tree per
question (each a root record, in order), rewritten after each question, so that what was asked
before an interruption is kept.
"""

from __future__ import annotations

import argparse
import functools
import sys
from typing import Any

from rlm_ray.cli.files import read_context
from rlm_ray.cli.run import (
    EXIT_ANSWER,
    EXIT_ERROR,
    context_options,
    make_rlm,
    print_answer,
    report_error,
    start,
    with_progress,
    write_traces,
)
from rlm_ray.errors import ConfigError, RLMError

_CHAT_EXIT = {"exit", "quit"}


def chat_command(args: argparse.Namespace, answer_out: Any) -> int:
    if args.context == "-":
        raise ConfigError("chat reads its questions from stdin: give --context a file or directory")
    start(args)
    context = read_context(args.context, **context_options(args))
    rlm = make_rlm(args)
    traces: list[Any] = []  # one root per question, in order
    failed = False
    with rlm.session(context) as session:
        for question in _questions(sys.stdin):
            try:
                ask = functools.partial(session.completion, question)
                result = with_progress(rlm, args.quiet, ask)
            except RLMError as exc:
                failed = True
                report_error(exc)
                _keep_trace(traces, getattr(exc, "trace", None), args)
                continue
            _keep_trace(traces, result.trace, args)
            print_answer(result, args, answer_out)
    return EXIT_ERROR if failed else EXIT_ANSWER


def _questions(stdin: Any) -> Any:
    """The questions of stdin, one a line, until its end or a line `exit` / `quit`; a prompt
    on stderr before each on a terminal."""
    interactive = stdin.isatty()
    while True:
        if interactive:
            print("rlm-ray> ", end="", file=sys.stderr, flush=True)
        line = stdin.readline()
        question = line.strip()
        if not line or question.lower() in _CHAT_EXIT:
            return
        if question:
            yield question


def _keep_trace(traces: list[Any], trace: Any, args: argparse.Namespace) -> None:
    if args.trace and trace is not None:
        traces.append(trace)
        write_traces(traces, args.trace, args.quiet)
