"""The `rlm-ray` command (also `python -m rlm_ray`).

    rlm-ray run --model M --context PATH|- --query TEXT [--trace FILE.jsonl|FILE.parquet] [options]
    rlm-ray replay FILE.jsonl --context NEW [--model M] [--api-base URL] [options of run]
    rlm-ray trace FILE [--html OUT.html]
    rlm-ray ingest PATH --out FILE.parquet
    rlm-ray chat --model M --context PATH [options]     follow-up questions, one per stdin line
    rlm-ray run --model local --context examples/... --query TEXT      (offline, no key)

Stdout carries only the answer (or, with --json, one JSON object with `answer`, `usage`,
`timings`); everything else goes to stderr: live progress on a terminal and a one-line summary
at the end (none of it with --quiet). Exit 0 on an answer; otherwise 1 with a one-line
error (2 for a usage mistake on the command line, 130 on Ctrl-C).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

from rlm_ray.config import RLMConfig
from rlm_ray.errors import ConfigError, LimitExceededError, RLMError
from rlm_ray.prompts import PROMPTS
from rlm_ray.terminal import json_text, printable

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130

# The defaults shown in `--help` are RLMConfig's own: the CLI passes no default of its own.
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(RLMConfig)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlm-ray", description="Recursive Language Models on Ray."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="answer a query over a context")
    _add_model_options(run, required=True)
    run.add_argument(
        "--context",
        required=True,
        metavar="PATH",
        help="a text file (the context is its text), a .json file (parsed), - (stdin), or a "
        "corpus: a directory (read recursively), a .jsonl, .csv or .parquet file, one document "
        "per file, line or row (see --chunk-by)",
    )
    run.add_argument("--query", required=True, help="the question to answer")
    _add_run_options(run)
    replay = commands.add_parser(
        "replay",
        help="re-run a recorded run's code on new data, with no root-model calls (a program)",
    )
    replay.add_argument("file", help="a trace written by `run --trace` (.jsonl or .parquet)")
    _add_model_options(replay, required=False)
    replay.add_argument("--context", required=True, metavar="PATH", help=_REPLAY_CONTEXT_HELP)
    _add_replay_options(replay)
    chat = commands.add_parser(
        "chat",
        help="a session: questions from stdin, one per line, over one context and one REPL",
        description="Ask follow-up questions over one context: each line of stdin is a question "
        "(a pipe or a terminal), each answer goes to stdout; the REPL's variables persist from "
        "question to question. Ends at end of input or on a line `exit` or `quit`.",
    )
    _add_model_options(chat, required=True)
    chat.add_argument(
        "--context",
        required=True,
        metavar="PATH",
        help="a text file, a .json file (parsed), or a corpus: a directory, a .jsonl, .csv or "
        ".parquet file (stdin carries the questions)",
    )
    _add_run_options(chat, trace=False)
    trace = commands.add_parser("trace", help="show a trace file: call tree, or an HTML page")
    trace.add_argument("file", help="a trace written by `run --trace` (.jsonl or .parquet)")
    trace.add_argument("--html", metavar="OUT.html", help="write a self-contained HTML page")
    ingest = commands.add_parser("ingest", help="read a corpus once into a Parquet document table")
    ingest.add_argument("path", help="a directory, JSONL, CSV, Parquet or text file")
    ingest.add_argument("--out", required=True, help="the Parquet file to write")
    ingest.add_argument("--include", action="append", default=[], help="glob of files to read")
    ingest.add_argument("--exclude", action="append", default=[], help="glob of files to skip")
    ingest.add_argument("--text-field", help="the text column of JSONL/CSV/Parquet input")
    return parser


_REPLAY_CONTEXT_HELP = "the new data, read as by `run --context` (file, .json, -, or a corpus)"


def _add_model_options(run: argparse.ArgumentParser, *, required: bool) -> None:
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


def _add_run_options(run: argparse.ArgumentParser, *, trace: bool = True) -> None:
    """The options of a run besides its models, context and query (also `replay`'s and, but
    for --trace, `chat`'s)."""
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
    if trace:
        run.add_argument(
            "--trace",
            metavar="FILE",
            help="write the call tree to FILE.jsonl or FILE.parquet (see `rlm-ray trace`)",
        )
    run.add_argument(
        "--json", action="store_true", help="print one JSON object: answer, usage, timings"
    )
    run.add_argument(
        "--cache", metavar="DIR", help="cache model calls in DIR: a re-run makes no model calls"
    )
    run.add_argument(
        "--quiet", action="store_true", help="no progress and no summary on stderr (errors only)"
    )


def _add_replay_options(replay: argparse.ArgumentParser) -> None:
    _add_run_options(replay)
    replay.set_defaults(max_depth=None)  # default: the recorded run's depth
    replay.add_argument(
        "--allow-effects",
        action="store_true",
        help="let `write` tools run again (a replay refuses them otherwise)",
    )


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
        return _dispatch(args, answer_out)
    finally:
        if argv is not None:
            sys.stdout = answer_out


def _dispatch(args: argparse.Namespace, answer_out: Any) -> int:
    def work() -> int:
        if args.command == "run":
            return _run(args, answer_out)
        if args.command == "replay":
            return _replay(args, answer_out)
        if args.command == "chat":
            return _chat(args, answer_out)
        return {"ingest": _ingest, "trace": _trace}[args.command](args)

    return _dispatch_work(work)


def _dispatch_work(work: Any) -> int:
    """Run a command; errors become one line on stderr and an exit code."""
    try:
        return work()
    except KeyboardInterrupt:
        print("rlm-ray: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except RLMError as exc:
        print(f"rlm-ray: error: {_one_line(exc)}", file=sys.stderr)
        if isinstance(exc, LimitExceededError) and exc.partial_answer:
            # a limit stopped the run: show what it had (not on stdout: not the answer)
            print(f"rlm-ray: partial answer: {printable(exc.partial_answer)}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # a machinery failure (Ray, network): still one line, not a traceback
        print(f"rlm-ray: error: {type(exc).__name__}: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR


def _run(args: argparse.Namespace, answer_out: Any) -> int:
    from rlm_ray.trace.file import check_trace_path

    if args.quiet:
        _quiet_ray()
    if args.trace:
        check_trace_path(args.trace)  # a bad path fails now, not after the run
    context = read_context(args.context, **_context_options(args))
    rlm = _rlm(args)
    return _answer(args, answer_out, rlm, lambda: rlm.completion(args.query, context))


def _context_options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "quiet": args.quiet,
        "chunk_by": args.chunk_by,
        "chunk_size": args.chunk_size,
        "address": args.address,
    }


def _rlm(args: argparse.Namespace, **recorded: Any) -> Any:
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


def _answer(args: argparse.Namespace, answer_out: Any, rlm: Any, work: Any) -> int:
    """Run `work()` (a completion or a replay) with progress, write the trace, print the answer."""
    try:
        if args.quiet:
            result = work()
        else:
            from rlm_ray.progress_display import ProgressDisplay

            with ProgressDisplay(sys.stderr) as display:
                rlm.on_progress = display.update
                result = work()
    except RLMError as exc:
        if args.trace and exc.trace is not None:  # what the failed run did, up to its error
            _write_trace(exc.trace, args.trace, args.quiet)
        raise
    if args.trace:
        _write_trace(result.trace, args.trace, args.quiet)
    _print_answer(result, args, answer_out)
    return 0


def _print_answer(result: Any, args: argparse.Namespace, answer_out: Any) -> None:
    if args.json:
        out = {"answer": result.answer, "usage": result.usage.to_dict(), "timings": result.timings}
        print(json_text(out), file=answer_out)
    else:  # model-made text: no escape sequence of it reaches the terminal
        print(printable(result.answer), file=answer_out)
    answer_out.flush()


_CHAT_EXIT = {"exit", "quit"}


def _chat(args: argparse.Namespace, answer_out: Any) -> int:
    """Questions from stdin, one per line, in one session; each answer on stdout. A question
    that fails is reported on stderr and the chat goes on."""
    if args.context == "-":
        raise ConfigError("chat reads its questions from stdin: give --context a file or directory")
    if args.quiet:
        _quiet_ray()
    context = read_context(args.context, **_context_options(args))
    rlm = _rlm(args)
    interactive = sys.stdin.isatty()
    with rlm.session(context) as session:
        while True:
            if interactive:
                print("rlm-ray> ", end="", file=sys.stderr, flush=True)
            line = sys.stdin.readline()
            question = line.strip()
            if not line or question.lower() in _CHAT_EXIT:
                return 0
            if not question:
                continue
            try:
                result = _ask(session, rlm, question, args.quiet)
            except RLMError as exc:
                print(f"rlm-ray: error: {_one_line(exc)}", file=sys.stderr)
                continue
            _print_answer(result, args, answer_out)


def _ask(session: Any, rlm: Any, question: str, quiet: bool) -> Any:
    if quiet:
        return session.completion(question)
    from rlm_ray.progress_display import ProgressDisplay

    with ProgressDisplay(sys.stderr) as display:
        rlm.on_progress = display.update
        return session.completion(question)


def _replay(args: argparse.Namespace, answer_out: Any) -> int:
    from rlm_ray.program import Program

    return _run_program(Program.from_file(args.file), args, answer_out)


def _run_program(program: Any, args: argparse.Namespace, answer_out: Any) -> int:
    """`rlm-ray replay` and a saved program's script: the program on the new context."""
    from rlm_ray.trace.file import check_trace_path

    if args.quiet:
        _quiet_ray()
    if args.trace:
        check_trace_path(args.trace)
    if not args.quiet:
        print(f"rlm-ray: {printable(program.describe())}", file=sys.stderr)
    recorded = {
        "model": program.model,
        "sub_model": program.sub_model,
        "max_depth": program.max_depth,
        "prompt": program.prompt,
    }
    context = read_context(args.context, **_context_options(args))
    rlm = _rlm(args, **recorded)
    replay = lambda: rlm.replay(program, context, allow_effects=args.allow_effects)  # noqa: E731
    return _answer(args, answer_out, rlm, replay)


def program_main(
    program: Any, *, context: Any = None, api_base: str | None = None, argv: Any = None
) -> int:
    """What a saved program's script (`Program.save`) runs: `rlm-ray replay`'s options,
    the context as `--context PATH` or the first argument (default: the script's CONTEXT)."""
    parser = argparse.ArgumentParser(description="Re-run a recorded rlm-ray program on new data.")
    parser.add_argument("context_path", nargs="?", metavar="CONTEXT", help=_REPLAY_CONTEXT_HELP)
    _add_model_options(parser, required=False)
    parser.add_argument("--context", metavar="PATH", help=_REPLAY_CONTEXT_HELP)
    _add_replay_options(parser)
    args = parser.parse_args(argv)
    args.context = args.context or args.context_path or context
    if args.context is None:
        parser.error("the new data is needed: --context PATH (or set CONTEXT in the script)")
    args.api_base = args.api_base or api_base
    answer_out = sys.stdout
    sys.stdout = sys.stderr  # the answer alone on stdout, as `rlm-ray run` (see main)
    try:
        return _dispatch_work(lambda: _run_program(program, args, answer_out))
    finally:
        if argv is not None:
            sys.stdout = answer_out


def _quiet_ray() -> None:
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


def _trace(args: argparse.Namespace) -> int:
    from rlm_ray.trace.file import read_trace

    records = read_trace(args.file)
    if args.html:
        from rlm_ray.trace.html import write_html

        write_html(records, args.html)
        print(f"rlm-ray: wrote {args.html} ({len(records)} calls)", file=sys.stderr)
    else:
        from rlm_ray.trace.view import print_trace

        print_trace(records)
    return 0


def _write_trace(trace: Any, path: str, quiet: bool) -> None:
    from rlm_ray.trace.file import write_trace

    calls = write_trace(trace, path)
    if not quiet:
        print(f"rlm-ray: wrote {calls} calls to {path}", file=sys.stderr)


def _ingest(args: argparse.Namespace) -> int:
    from rlm_ray.corpus.ingest import read_corpus, write_corpus

    table, report = read_corpus(
        args.path, include=args.include, exclude=args.exclude, text_field=args.text_field
    )
    write_corpus(table, args.out)
    _report(report)
    print(f"rlm-ray: wrote {args.out}", file=sys.stderr)
    return 0


def _report(report: Any) -> None:
    print(
        f"rlm-ray: {report.documents:,} documents, {report.total_chars:,} characters from "
        f"{report.sources:,} sources; {len(report.replaced_decoding)} not UTF-8 (decoded with "
        f"replacement), {len(report.skipped_binary)} binary skipped",
        file=sys.stderr,
    )
    for name in report.skipped_binary[:20]:
        print(f"rlm-ray: skipped binary file {printable(name)}", file=sys.stderr)


_CORPUS_SUFFIXES = (".jsonl", ".ndjson", ".csv", ".parquet")


def read_context(
    source: str,
    *,
    quiet: bool = False,
    chunk_by: str = "chars",
    chunk_size: int = 200_000,
    address: str | None = None,
) -> Any:
    """A corpus (directory, JSONL, CSV, Parquet, a glob of them, or a URI such as s3://...)
    loaded into the object store (`rlm_ray.load`: on the cluster when large or remote); any
    other file as its text (a .json file parsed); stdin as text. Binary input is refused."""
    if _is_corpus_source(source):
        from rlm_ray.corpus.load import load_corpus

        corpus, report = load_corpus(
            source, chunk_by=chunk_by, chunk_size=chunk_size, address=address
        )
        if not quiet and report is not None:
            _report(report)
        return corpus
    if source == "-":
        data = sys.stdin.buffer.read()
        name = "stdin"
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"--context {source}: no such file")
        data = path.read_bytes()
        name = str(path)
    if b"\x00" in data[:65536]:
        raise ConfigError(f"--context {name}: looks binary (NUL bytes), expected text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"--context {name}: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    if name.endswith(".json"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--context {name}: invalid JSON ({exc})") from None
    return text


def _is_corpus_source(source: str) -> bool:
    """A directory, a corpus file by its suffix, a glob or a URI (without importing pyarrow)."""
    if source == "-":
        return False
    path = Path(source)
    remote_or_glob = "://" in source or any(c in source for c in "*?[")
    return remote_or_glob or path.is_dir() or path.suffix.lower() in _CORPUS_SUFFIXES


def _one_line(exc: BaseException) -> str:
    """An error on one line, for the terminal: its text may quote model output or a reply."""
    text = printable(" ".join(str(exc).split()))
    return text if len(text) <= 500 else text[:497] + "..."


if __name__ == "__main__":
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    raise SystemExit(main())
