"""What the command reads and writes besides a run: `--context` as a run's input, and the
`trace` and `ingest` commands."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rlm_ray.errors import ConfigError
from rlm_ray.safety.terminal import printable

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


def trace_command(args: argparse.Namespace) -> int:
    from rlm_ray.trace import read_trace

    records = read_trace(args.file)
    if args.html:
        from rlm_ray.trace.html import write_html

        write_html(records, args.html)
        print(f"rlm-ray: wrote {args.html} ({len(records)} calls)", file=sys.stderr)
    else:
        from rlm_ray.trace.view import print_trace

        print_trace(records)
    return 0


def ingest_command(args: argparse.Namespace) -> int:
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
