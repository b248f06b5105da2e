"""A run from the command line: `run`, `replay` and a saved program's script. The RLM of the
options, live progress, the trace written, the answer printed, and every error as one line and
an exit code.

Exit codes (README, "Use"): 0 an answer; 1 an error (one line on stderr); 2 a usage mistake on
the command line (argparse's); 130 interrupted (Ctrl-C). `chat` exits 1 if a question failed.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from rlm_ray.cli.files import read_context
from rlm_ray.errors import LimitExceededError, RLMError
from rlm_ray.safety.terminal import json_text, printable

EXIT_ANSWER = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def dispatch_work(work: Any) -> int:
    """Run a command; errors become one line on stderr and an exit code."""
    try:
        return work()
    except KeyboardInterrupt:
        print("rlm-ray: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except RLMError as exc:
        report_error(exc)
        return EXIT_ERROR
    except Exception as exc:  # a machinery failure (Ray, network): still one line, not a traceback
        print(f"rlm-ray: error: {type(exc).__name__}: {one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR


def report_error(exc: RLMError) -> None:
    print(f"rlm-ray: error: {one_line(exc)}", file=sys.stderr)
    if isinstance(exc, LimitExceededError) and exc.partial_answer:
        # a limit stopped the run: show what it had (not on stdout: not the answer)
        print(f"rlm-ray: partial answer: {printable(exc.partial_answer)}", file=sys.stderr)


def run_command(args: argparse.Namespace, answer_out: Any) -> int:
    start(args)
    context = read_context(args.context, **context_options(args))
    rlm = make_rlm(args)
    return _answer(args, answer_out, rlm, lambda: rlm.completion(args.query, context))


def context_options(args: argparse.Namespace) -> dict[str, Any]:
    """How `read_context` loads a corpus: the run's chunking, on the run's Ray."""
    return {
        "quiet": args.quiet,
        "chunk_by": args.chunk_by,
        "chunk_size": args.chunk_size,
        "address": args.address,
    }


def start(args: argparse.Namespace) -> None:
    """Before any work: Ray's start-up lines kept quiet with --quiet, a bad --trace path
    refused now, not after the run."""
    from rlm_ray.trace import check_trace_path

    if args.quiet:
        quiet_ray()
    if args.trace:
        check_trace_path(args.trace)


def make_rlm(args: argparse.Namespace, **recorded: Any) -> Any:
    """The RLM of the command line's options; `recorded`: a replay's defaults for options left out."""
    from rlm_ray.rlm import RLM

    model: str = args.model or recorded["model"]
    sub_model = args.sub_model or (None if args.model else recorded.get("sub_model"))
    max_depth: int = recorded["max_depth"] if args.max_depth is None else args.max_depth
    return RLM(
        model,
        sub_model=sub_model,
        models=[m.strip() for m in args.models.split(",") if m.strip()] if args.models else None,
        api_base=args.api_base,
        api_key=args.api_key,
        max_depth=max_depth,
        max_iterations=args.max_iterations,
        max_time_s=args.max_time,
        max_sub_calls=args.max_sub_calls,
        max_total_tokens=args.max_total_tokens,
        max_cost_usd=args.max_cost_usd,
        requests_per_minute=args.requests_per_minute,
        tokens_per_minute=args.tokens_per_minute,
        chunk_by=args.chunk_by,
        chunk_size=args.chunk_size,
        address=None if _ray_connected() else args.address,  # a corpus loaded joined it
        cache_dir=args.cache,
        prompt=args.prompt or recorded.get("prompt"),
    )


def _ray_connected() -> bool:
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


def with_progress(rlm: Any, quiet: bool, work: Any) -> Any:
    """`work()` with the live progress display on stderr (none with --quiet)."""
    if quiet:
        return work()
    from rlm_ray.cli.progress_display import ProgressDisplay

    with ProgressDisplay(sys.stderr) as display:
        rlm.on_progress = display.update
        return work()


def _answer(args: argparse.Namespace, answer_out: Any, rlm: Any, work: Any) -> int:
    """Run `work()` (a completion or a replay) with progress, write the trace, print the answer."""
    try:
        result = with_progress(rlm, args.quiet, work)
    except RLMError as exc:
        if args.trace and exc.trace is not None:  # what the failed run did, up to its error
            write_traces([exc.trace], args.trace, args.quiet)
        raise
    if args.trace:
        write_traces([result.trace], args.trace, args.quiet)
        program = result.program
        if not args.quiet and program is not None and not program.answer.computed:
            # said now, not when a replay of the file fails
            note = f"this run's program cannot replay its answer: {program.answer.describe()}"
            print(f"rlm-ray: note: {printable(note)}", file=sys.stderr)
    print_answer(result, args, answer_out)
    return EXIT_ANSWER


def print_answer(result: Any, args: argparse.Namespace, answer_out: Any) -> None:
    if args.json:
        out = {"answer": result.answer, "usage": result.usage.to_dict(), "timings": result.timings}
        print(json_text(out), file=answer_out)
    else:  # model-made text: no escape sequence of it reaches the terminal
        print(printable(result.answer), file=answer_out)
    answer_out.flush()


def write_traces(roots: list[Any], path: str, quiet: bool) -> None:
    from rlm_ray.trace.file import write_traces as write

    calls = write(roots, path)
    if not quiet:
        print(f"rlm-ray: wrote {calls} calls to {path}", file=sys.stderr)


def replay_command(args: argparse.Namespace, answer_out: Any) -> int:
    from rlm_ray.program import Program

    return run_program(Program.from_file(args.file), args, answer_out)


def run_program(program: Any, args: argparse.Namespace, answer_out: Any) -> int:
    """`rlm-ray replay` and a saved program's script: the program on the new context."""
    start(args)
    if not args.quiet:
        print(f"rlm-ray: {printable(program.describe())}", file=sys.stderr)
    recorded = {
        "model": program.model,
        "sub_model": program.sub_model,
        "max_depth": program.max_depth,
        "prompt": program.prompt,
    }
    context = read_context(args.context, **context_options(args))
    rlm = make_rlm(args, **recorded)
    replay = lambda: rlm.replay(program, context, allow_effects=args.allow_effects)  # noqa: E731
    return _answer(args, answer_out, rlm, replay)


def quiet_ray() -> None:
    """Keep Ray's start-up log lines (INFO and the token-auth WARNING) off stderr.

    subtle: `ray.init` resets the "ray" logger to its `logging_level` argument, whose default
    is read from RAY_LOGGER_LEVEL when Ray is imported; the variable is removed again so that
    Ray processes started from here keep their normal logs."""
    if "ray" in sys.modules or "RAY_LOGGER_LEVEL" in os.environ:
        return
    os.environ["RAY_LOGGER_LEVEL"] = "error"
    try:
        import ray  # noqa: F401
    finally:
        del os.environ["RAY_LOGGER_LEVEL"]


def one_line(exc: BaseException) -> str:
    """An error on one line, for the terminal: its text may quote model output or a reply."""
    text = printable(" ".join(str(exc).split()))
    return text if len(text) <= 500 else text[:497] + "..."
