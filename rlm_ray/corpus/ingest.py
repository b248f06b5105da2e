"""Corpus ingestion: files on disk (or stdin bytes) -> one Arrow table, one row per document.

The only module that reads corpora with pyarrow; no Ray here, so it is tested in milliseconds.

    read_corpus(path)          a directory (recursive), JSONL, Parquet, CSV or a single text file
    read_corpus_bytes(data)    the same for stdin: format given or sniffed (Parquet, JSONL, text)
    write_corpus(table, out)   Parquet that `read_corpus` reads back unchanged

Every table has `id` (int64, 0..n-1), `source` (the file, or "file:N" for the Nth JSONL record,
CSV row or Parquet row), `text` (large_string), then the other columns of the input, renamed
`meta_<name>` where they clash with those three.

JSONL, CSV and Parquet go through pyarrow's own multithreaded readers: no Python per record.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from rlm_ray.errors import ConfigError

TEXT_FIELDS = ("text", "content", "body", "document")
"""Columns tried, in order, as the document text when `text_field` is not given."""

TEXT_SUFFIXES = frozenset(
    ".txt .md .markdown .rst .adoc .org .tex .html .htm .xml .json .yaml .yml .toml .ini .cfg"
    " .py .pyi .ipynb .js .jsx .ts .tsx .java .kt .scala .go .rs .c .h .cc .cpp .hpp .cs .rb"
    " .php .swift .m .r .jl .lua .pl .sh .bash .zsh .sql .css .scss .vue .svelte".split()
)
"""Suffixes a directory walk reads when no `include` pattern is given."""

FORMATS = ("jsonl", "csv", "parquet", "text")
_SUFFIX_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}
_RESERVED = ("id", "source", "text")
_MARKER = {b"rlm_ray.corpus": b"1"}  # tags tables we wrote, so they are read back unchanged
_BINARY_SNIFF = 8192
# subtle: pyarrow's JSON reader cannot parse a line longer than its block; 16 MiB blocks read
# fast on 2 CPUs, and a longer line triggers one retry with a block as large as the file.
_JSON_BLOCK = 16 << 20
_MAX_BLOCK = 2**31 - 1


@dataclass
class IngestReport:
    """What `read_corpus` read, replaced and skipped."""

    documents: int = 0
    """Rows of the table."""
    total_chars: int = 0
    """Characters (code points) over all `text` values."""
    replaced_decoding: list[str] = field(default_factory=list)
    """Sources that were not valid UTF-8 and were decoded with U+FFFD replacement."""
    skipped_binary: list[str] = field(default_factory=list)
    """Files skipped as binary (a NUL byte in their first 8 KiB)."""
    sources: int = 0
    """Files (or stdin streams) opened, including the skipped ones."""


def read_corpus(
    path: str | Path,
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    text_field: str | None = None,
) -> tuple[pa.Table, IngestReport]:
    """Read a directory, JSONL, Parquet, CSV or text file into a document table.

    `include` / `exclude` are glob patterns for a directory walk, matched against the path
    relative to the directory, its file name and each parent folder ("*.md", "docs/**", "build").
    `text_field` names the text column of JSONL, CSV and Parquet input.
    """
    path = Path(path)
    if path.is_dir():
        return _read_directory(path, include, exclude)
    if not path.is_file():
        raise ConfigError(f"corpus path {str(path)!r} does not exist")
    fmt = _SUFFIX_FORMATS.get(path.suffix.lower(), "text")
    # a memory map hands the file to pyarrow without copying it into Python
    with pa.memory_map(str(path)) as mapped:
        return _read_buffer(mapped.read_buffer(), str(path), fmt, text_field)


def read_corpus_bytes(
    data: bytes, *, name: str = "stdin", format: str | None = None, text_field: str | None = None
) -> tuple[pa.Table, IngestReport]:
    """Read one stream (stdin) into a document table; `format` is one of `FORMATS` or sniffed.

    Sniffing recognises Parquet (its magic bytes) and JSONL (a leading "{"); anything else is
    one text document, so CSV on stdin needs ``format="csv"``.
    """
    fmt = format or _sniff(data)
    if fmt not in FORMATS:
        raise ConfigError(f"`format` must be one of {', '.join(FORMATS)}; got {format!r}")
    return _read_buffer(pa.py_buffer(data), name, fmt, text_field)


def write_corpus(table: pa.Table, out: str | Path) -> None:
    """Write a document table from `read_corpus` as Parquet, tagged so it reads back unchanged."""
    expected = [("id", pa.int64()), ("source", pa.string()), ("text", pa.large_string())]
    head = [(f.name, f.type) for f in table.schema][:3]
    if head != expected:
        raise ConfigError(
            f"write_corpus needs a table from read_corpus (id, source, text first); got {head}"
        )
    metadata = {**(table.schema.metadata or {}), **_MARKER}
    pq.write_table(table.replace_schema_metadata(metadata), str(out))


def _sniff(data: bytes) -> str:
    if data[:4] == b"PAR1":
        return "parquet"
    return "jsonl" if data.lstrip()[:1] == b"{" else "text"


def _read_buffer(
    buf: pa.Buffer, name: str, fmt: str, text_field: str | None
) -> tuple[pa.Table, IngestReport]:
    report = IngestReport(sources=1)
    if fmt != "text" and buf.size == 0:
        raise ConfigError(f"empty corpus: {name} is empty")
    table = file_documents(buf, name, fmt, text_field, report)
    if fmt != "text" and table.num_rows == 0:
        raise ConfigError(f"empty corpus: {name} holds no records")
    return finish_table(table, report, name)


def file_documents(
    buf: pa.Buffer, name: str, fmt: str, text_field: str | None, report: IngestReport
) -> pa.Table:
    """One file's documents (`source`, `text`, its other columns; no `id`): what both the
    driver's reader and the cluster's read tasks make of a file, so both give the same corpus.
    A binary text file gives no rows (listed in `report`); an empty one, no rows."""
    if fmt == "text":
        text = _decode(buf.to_pybytes(), name, report)
        texts = [] if text is None else [text]
        return _text_table([name] * len(texts), texts)
    if buf.size == 0:
        return _text_table([], [])
    if fmt in ("jsonl", "csv") and not _is_utf8(buf):
        # subtle: pyarrow's JSON reader passes invalid UTF-8 into string arrays unchecked, so
        # repair the bytes before parsing (rare, so a Python pass is fine)
        report.replaced_decoding.append(name)
        buf = pa.py_buffer(buf.to_pybytes().decode("utf-8", "replace").encode())
    if fmt == "jsonl":
        table = _read_jsonl(buf, name)
    elif fmt == "csv":
        table = _read_with(pa_csv.read_csv, buf, name, "CSV")
    else:
        table = _read_with(pq.read_table, buf, name, "Parquet")
        if _is_corpus(table.schema):
            return table  # written by `write_corpus`: read back unchanged, its ids kept
    if table.num_rows == 0:
        return table
    return _document_table(table, name, text_field, report)


def _read_jsonl(buf: pa.Buffer, name: str) -> pa.Table:
    options = pa_json.ReadOptions(block_size=_JSON_BLOCK)
    try:
        return pa_json.read_json(pa.BufferReader(buf), read_options=options)
    except pa.ArrowInvalid as e:
        if "straddl" not in str(e) or buf.size >= _MAX_BLOCK:
            raise _broken(name, "JSONL", e) from None
    options = pa_json.ReadOptions(block_size=min(buf.size + 1, _MAX_BLOCK))
    return _read_with(lambda src: pa_json.read_json(src, read_options=options), buf, name, "JSONL")


def _read_with(reader, buf: pa.Buffer, name: str, kind: str) -> pa.Table:
    try:
        return reader(pa.BufferReader(buf))
    except pa.ArrowInvalid as e:
        raise _broken(name, kind, e) from None


def _broken(name: str, kind: str, error: Exception) -> ConfigError:
    first_line = (str(error).strip().splitlines() or ["unknown error"])[0]
    return ConfigError(f"cannot read {name} as {kind}: {first_line}")


def _is_utf8(buf: pa.Buffer) -> bool:
    # view the whole buffer as one large_string value: Arrow's validator runs in C++, no copy
    offsets = pa.array([0, buf.size], pa.int64()).buffers()[1]
    try:
        pa.LargeStringArray.from_buffers(1, offsets, buf).validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def _is_corpus(schema: pa.Schema) -> bool:
    metadata = schema.metadata or {}
    return all(metadata.get(k) == v for k, v in _MARKER.items())


def _document_table(
    table: pa.Table, name: str, text_field: str | None, report: IngestReport
) -> pa.Table:
    column = _text_column(table, name, text_field)
    numbers = pc.cast(pa.array(range(1, table.num_rows + 1), pa.int64()), pa.string())
    columns = {
        "source": pc.binary_join_element_wise(name, numbers, ":"),
        "text": _as_text(table[column], name, column, report),
    }
    for meta in table.column_names:
        if meta != column:
            columns[f"meta_{meta}" if meta in _RESERVED else meta] = table[meta]
    return pa.table(columns)


def _text_column(table: pa.Table, name: str, text_field: str | None) -> str:
    found = table.column_names
    if text_field is not None:
        if text_field not in found:
            raise ConfigError(f"{name}: no column {text_field!r} (`text_field`); found {found}")
        return text_field
    for candidate in TEXT_FIELDS:
        if candidate in found:
            return candidate
    raise ConfigError(
        f"{name}: no text column among {list(TEXT_FIELDS)}; found {found}; pass `text_field`"
    )


def _as_text(values: pa.ChunkedArray, name: str, column: str, report: IngestReport):
    kind = values.type
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        # a Parquet binary column may still hold text
        try:
            values = values.cast(pa.large_string())
        except pa.ArrowInvalid:
            report.replaced_decoding.append(name)
            decoded = [
                None if v is None else v.decode("utf-8", "replace") for v in values.to_pylist()
            ]
            values = pa.chunked_array([pa.array(decoded, pa.large_string())])
    elif not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        if not (pa.types.is_dictionary(kind) or pa.types.is_string_view(kind)):
            raise ConfigError(f"{name}: text column {column!r} holds {kind}, not strings")
    return values.cast(pa.large_string()).fill_null("")


def _read_directory(
    root: Path, include: Sequence[str], exclude: Sequence[str]
) -> tuple[pa.Table, IngestReport]:
    report = IngestReport()
    sources: list[str] = []
    texts: list[str] = []
    for path in _walk(root, include, exclude):
        report.sources += 1
        text = _decode(path.read_bytes(), str(path), report)
        if text is not None:
            sources.append(str(path))
            texts.append(text)
    return finish_table(_text_table(sources, texts), report, f"directory {str(root)!r}")


def _walk(root: Path, include: Sequence[str], exclude: Sequence[str]) -> list[Path]:
    found = []
    for folder, dirs, files in os.walk(root):
        # hidden folders (.git, .venv) are pruned here so the walk never descends into them
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for file in sorted(files):
            path = Path(folder, file)
            rel = path.relative_to(root).as_posix()
            wanted = matches(rel, include) if include else path.suffix.lower() in TEXT_SUFFIXES
            if wanted and not file.startswith(".") and not matches(rel, exclude):
                found.append(path)
    return found


def matches(rel: str, patterns: Sequence[str]) -> bool:
    # a pattern may name the relative path, the file name or any parent folder, as in .gitignore
    parts = rel.split("/")
    candidates = [rel, parts[-1]] + ["/".join(parts[:i]) for i in range(1, len(parts))]
    return any(fnmatch.fnmatch(c, p) for p in patterns for c in candidates)


def _decode(data: bytes, name: str, report: IngestReport) -> str | None:
    if b"\x00" in data[:_BINARY_SNIFF]:
        report.skipped_binary.append(name)
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        report.replaced_decoding.append(name)
        return data.decode("utf-8", "replace")


def _text_table(sources: list[str], texts: list[str]) -> pa.Table:
    return pa.table(
        {"source": pa.array(sources, pa.string()), "text": pa.array(texts, pa.large_string())}
    )


def finish_table(
    table: pa.Table, report: IngestReport, where: str
) -> tuple[pa.Table, IngestReport]:
    report.documents = table.num_rows
    report.total_chars = pc.sum(pc.utf8_length(table["text"])).as_py() or 0
    if report.total_chars == 0:
        raise ConfigError(empty_corpus_message(report, where))
    if "id" not in table.column_names:  # a table we wrote already has its ids
        table = table.add_column(0, "id", pa.array(range(table.num_rows), pa.int64()))
    return table.replace_schema_metadata({**(table.schema.metadata or {}), **_MARKER}), report


def empty_corpus_message(report: IngestReport, where: str) -> str:
    found = f"{report.documents} documents, all empty" if report.documents else "no documents"
    message = f"empty corpus: no text in {where} ({report.sources} files read, {found})"
    skipped = report.skipped_binary
    if skipped:
        more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        message += f"; skipped {len(skipped)} binary: {', '.join(skipped[:5])}{more}"
    return message
