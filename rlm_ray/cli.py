"""The `rlm-ray` command (also `python -m rlm_ray`).

    rlm-ray run --model M --context PATH|- --query TEXT [options]

Stdout carries only the answer (or, with --json, one JSON object with `answer`, `usage`,
`timings`); everything else goes to stderr. Exit 0 on an answer; otherwise 1 with a one-line
error (2 for a usage mistake on the command line, 130 on Ctrl-C).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from rlm_ray.errors import ConfigError, RLMError

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlm-ray", description="Recursive Language Models on Ray."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="answer a query over a context")
    run.add_argument("--model", required=True, help="litellm model string, e.g. openai/gpt-4o-mini")
    run.add_argument("--sub-model", help="model for llm_query and child calls (default: --model)")
    run.add_argument("--api-base", help="base URL of the model server (local servers, proxies)")
    run.add_argument("--api-key", help="API key (default: the provider's environment variable)")
    run.add_argument(
        "--context", required=True, help="file to read the context from, or - for stdin"
    )
    run.add_argument("--query", required=True, help="the question to answer")
    run.add_argument("--max-depth", type=int, default=1, help="REPL depth (default 1: root only)")
    run.add_argument("--max-iterations", type=int, default=20, help="model turns per call")
    run.add_argument("--max-time", type=float, default=None, help="deadline of the run, seconds")
    run.add_argument(
        "--chunk-by",
        choices=["chars", "tokens", "documents"],
        default="chars",
        help="how a corpus is cut into chunks in the object store (default: chars)",
    )
    run.add_argument(
        "--chunk-size", type=int, default=200_000, help="chars, tokens or documents per chunk"
    )
    run.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else local Ray)")
    run.add_argument("--trace", metavar="FILE.jsonl", help="write the call tree as JSONL")
    run.add_argument(
        "--json", action="store_true", help="print one JSON object: answer, usage, timings"
    )
    ingest = commands.add_parser("ingest", help="read a corpus once into a Parquet document table")
    ingest.add_argument("path", help="a directory, JSONL, CSV, Parquet or text file")
    ingest.add_argument("--out", required=True, help="the Parquet file to write")
    ingest.add_argument("--include", action="append", default=[], help="glob of files to read")
    ingest.add_argument("--exclude", action="append", default=[], help="glob of files to skip")
    ingest.add_argument("--text-field", help="the text column of JSONL/CSV/Parquet input")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _ingest(args) if args.command == "ingest" else _run(args)
    except KeyboardInterrupt:
        print("rlm-ray: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except RLMError as exc:
        print(f"rlm-ray: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # a machinery failure (Ray, network): still one line, not a traceback
        print(f"rlm-ray: error: {type(exc).__name__}: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR


def _run(args: argparse.Namespace) -> int:
    from rlm_ray.rlm import RLM
    from rlm_ray.tracefile import write_jsonl

    context = read_context(args.context)
    rlm = RLM(
        args.model,
        sub_model=args.sub_model,
        api_base=args.api_base,
        api_key=args.api_key,
        max_depth=args.max_depth,
        max_iterations=args.max_iterations,
        max_time_s=args.max_time,
        chunk_by=args.chunk_by,
        chunk_size=args.chunk_size,
        address=args.address,
    )
    result = rlm.completion(args.query, context)
    if args.trace:
        calls = write_jsonl(result.trace, args.trace)
        print(f"rlm-ray: wrote {calls} calls to {args.trace}", file=sys.stderr)
    if args.json:
        out = {"answer": result.answer, "usage": result.usage.to_dict(), "timings": result.timings}
        print(json.dumps(out, ensure_ascii=False))
    else:
        print(result.answer)
    return 0


def _ingest(args: argparse.Namespace) -> int:
    from rlm_ray.ingest import read_corpus, write_corpus

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
        print(f"rlm-ray: skipped binary file {name}", file=sys.stderr)


_CORPUS_SUFFIXES = (".jsonl", ".ndjson", ".csv", ".parquet")


def read_context(source: str) -> Any:
    """A corpus (directory, JSONL, CSV, Parquet) as a document table, which the run turns into
    a corpus in the object store; any other file as its text (a .json file parsed); stdin as
    text. Binary input is refused."""
    path = Path(source)
    if source != "-" and (path.is_dir() or path.suffix.lower() in _CORPUS_SUFFIXES):
        from rlm_ray.ingest import read_corpus

        table, report = read_corpus(path)
        _report(report)
        return table
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


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 500 else text[:497] + "..."


if __name__ == "__main__":
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    raise SystemExit(main())
