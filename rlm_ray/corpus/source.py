"""Where a corpus is: a path, a directory, a glob or a filesystem URI, listed into its files.

    list_source(source)   the files of a corpus, in corpus order, with the filesystem that
                          reads them (pyarrow's: local, s3://, gs://, hdfs://, abfs://, ...)
    read_listing(...)     those files read here, in this process (a small glob)

Both the driver's reader and the cluster's read tasks read the files `list_source` lists, in its
order, and name each document as `ingest.read_corpus` does (the path as given; `path:N` for the
Nth record), so a corpus is the same whichever reads it. A listing fails with a one-line
`ConfigError` naming the source (missing, unreachable, no such bucket, permission denied) before
anything is read. pyarrow only; credentials come from pyarrow's defaults (the usual environment
variables, config files), never from here.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from rlm_ray.corpus.ingest import (
    TEXT_SUFFIXES,
    IngestReport,
    empty_corpus_message,
    file_documents,
    finish_table,
    matches,
)
from rlm_ray.errors import ConfigError

SUFFIX_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}
_GLOB_CHARS = re.compile(r"[*?\[]")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True)
class Listing:
    """The files of a corpus, in corpus order."""

    source: str
    """The source as given, for messages (its query string and any user info removed)."""
    filesystem: Any
    paths: tuple[str, ...]
    """Each file as `filesystem` names it."""
    names: tuple[str, ...]
    """Each file's name in the corpus (the `source` column)."""
    formats: tuple[str, ...]
    """How each file is read: "text" (one document), "jsonl", "csv" or "parquet"."""
    sizes: tuple[int, ...]
    remote: bool
    """Not on this machine's local filesystem: read on the cluster."""

    @property
    def total_bytes(self) -> int:
        return sum(self.sizes)


def is_uri(source: str) -> bool:
    return bool(_URI.match(source))


def is_glob(source: str) -> bool:
    return bool(_GLOB_CHARS.search(source))


def shown(source: str) -> str:
    """A source fit for a message or a trace: no query string, no `user:secret@`."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@", r"\1", source.split("?", 1)[0])


def list_source(
    source: str | Path, include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> Listing:
    """The files of a corpus: one file (read by its suffix), a directory (recursive; its text
    files, each one document, as `read_corpus` reads one) or a glob (each file by its suffix)."""
    given = str(source)
    name = shown(given)
    filesystem, path, prefix = _filesystem(given, name)
    glob = is_glob(path)
    base = _glob_base(path) if glob else path
    info = _stat(filesystem, base, name)
    if info.type == pafs.FileType.File and not glob:
        files = [(path, given if not prefix else prefix + path, info.size)]
        return _listing(name, filesystem, files, [_format_of(path)], prefix)
    if info.type != pafs.FileType.Directory:
        raise ConfigError(_missing(filesystem, base, name))
    found = _walk(filesystem, base, name)
    shown_base = prefix + base.rstrip("/") if prefix else _local_base(given, glob)
    if glob:
        pattern = path[len(base) :].lstrip("/")
        kept = [(p, rel, s) for p, rel, s in found if fnmatch.fnmatch(rel, pattern)]
        kept.sort(key=lambda f: f[1])
        formats = [_format_of(p) for p, _, _ in kept]
    else:
        kept = [f for f in found if _wanted(f[1], include, exclude)]
        kept.sort(key=lambda f: _walk_order(f[1]))
        formats = ["text"] * len(kept)
    if not kept:
        raise ConfigError(f"empty corpus: no files to read in {name}")
    if prefix:
        files = [(p, f"{shown_base}/{rel}", s) for p, rel, s in kept]
    else:  # as `read_corpus` names them: the folder as given, joined
        files = [(p, str(Path(shown_base, rel)), s) for p, rel, s in kept]
    return _listing(name, filesystem, files, formats, prefix)


def read_listing(listing: Listing, text_field: str | None) -> tuple[pa.Table, IngestReport]:
    """Every listed file read here, in order, into one document table (`read_corpus`'s form)."""
    report = IngestReport()
    tables = []
    for path, name, fmt in zip(listing.paths, listing.names, listing.formats):
        report.sources += 1
        with listing.filesystem.open_input_file(path) as f:
            tables.append(file_documents(f.read_buffer(), name, fmt, text_field, report))
    table = pa.concat_tables(tables, promote_options="default")
    return finish_table(table, report, listing.source)


# -- internals -----------------------------------------------------------------------------------


def _filesystem(given: str, name: str) -> tuple[Any, str, str]:
    """(filesystem, path in it, the URI prefix that names its files: "" for local paths)."""
    if not is_uri(given) or given.startswith("file://"):
        local = given[len("file://") :] if given.startswith("file://") else given
        return pafs.LocalFileSystem(), str(Path(local).absolute()), ""
    glob_at = _GLOB_CHARS.search(given.split("?", 1)[0])
    head, tail = (given, "") if glob_at is None else _split_glob_uri(given, glob_at.start())
    try:
        filesystem, path = pafs.FileSystem.from_uri(head)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
        raise ConfigError(
            f"corpus {name}: not a filesystem pyarrow can open ({_first_line(exc)}); use a "
            "local path or an s3://, gs://, hdfs:// or abfs:// URI"
        ) from None
    except OSError as exc:
        raise ConfigError(f"corpus {name}: {explain(exc)}") from None
    scheme = given.split("://", 1)[0]
    return filesystem, path + tail, f"{scheme}://"


def _split_glob_uri(given: str, at: int) -> tuple[str, str]:
    """A URI with a glob: the part pyarrow opens (up to the glob's folder, plus the query
    string) and the glob's rest."""
    path, _, query = given.partition("?")
    cut = path.rfind("/", 0, at)
    return path[:cut] + (f"?{query}" if query else ""), path[cut:]


def _local_base(given: str, glob: bool) -> str:
    """The folder part of a local source as the user wrote it (files are named under it)."""
    path = given[len("file://") :] if given.startswith("file://") else given
    return str(Path(_glob_base(path) if glob else path))


def _glob_base(path: str) -> str:
    at = _GLOB_CHARS.search(path)
    assert at is not None
    cut = path.rfind("/", 0, at.start())
    return "." if cut < 0 else path[:cut] or "/"


def _stat(filesystem: Any, path: str, name: str) -> Any:
    try:
        return filesystem.get_file_info(path)
    except OSError as exc:
        raise ConfigError(f"corpus {name}: {explain(exc)}") from None


def _walk(filesystem: Any, base: str, name: str) -> list[tuple[str, str, int]]:
    """(path, path relative to `base`, size) of every file under `base`; hidden ones dropped."""
    try:
        infos = filesystem.get_file_info(pafs.FileSelector(base, recursive=True))
    except OSError as exc:
        raise ConfigError(f"corpus {name}: {explain(exc)}") from None
    root = base.rstrip("/")
    found = []
    for info in infos:
        if info.type != pafs.FileType.File:
            continue
        rel = info.path[len(root) :].lstrip("/")
        if not any(part.startswith(".") for part in rel.split("/")):
            found.append((info.path, rel, info.size or 0))
    return found


def _wanted(rel: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    wanted = (
        matches(rel, include) if include else PurePosixPath(rel).suffix.lower() in TEXT_SUFFIXES
    )
    return wanted and not matches(rel, exclude)


def _walk_order(rel: str) -> tuple:
    # `read_corpus` walks top-down with sorted names: a folder's files before its subfolders
    *folders, file = rel.split("/")
    return (*((1, d) for d in folders), (0, file))


def _format_of(path: str) -> str:
    return SUFFIX_FORMATS.get(PurePosixPath(path).suffix.lower(), "text")


def _listing(name: str, filesystem: Any, files: list, formats: list, prefix: str) -> Listing:
    return Listing(
        source=name,
        filesystem=filesystem,
        paths=tuple(p for p, _, _ in files),
        names=tuple(n for _, n, _ in files),
        formats=tuple(formats),
        sizes=tuple(s for _, _, s in files),
        remote=bool(prefix),
    )


def _missing(filesystem: Any, path: str, name: str) -> str:
    if isinstance(filesystem, pafs.LocalFileSystem):
        return f"corpus path {name!r} does not exist"
    bucket = path.split("/", 1)[0]
    try:
        exists = _stat(filesystem, bucket, name).type != pafs.FileType.NotFound
    except ConfigError:
        exists = True
    if not exists:
        return f"corpus {name}: the bucket {bucket!r} does not exist"
    return f"corpus {name}: no such file, folder or prefix"


_CAUSES = (
    (("NO_SUCH_BUCKET", "NoSuchBucket"), "the bucket does not exist"),
    (
        ("ACCESS_DENIED", "AccessDenied", "HTTP status 403", "Forbidden", "InvalidAccessKeyId"),
        "permission denied (check the credentials: the usual environment variables or config)",
    ),
    (
        ("NETWORK_CONNECTION", "curlCode", "Could not connect", "Couldn't connect", "timed out"),
        "cannot reach the storage endpoint",
    ),
)


def explain(exc: BaseException, known_only: bool = False) -> str:
    """What a filesystem error means for the user, in one line ("" with `known_only` when it
    is none of the known causes)."""
    text = str(exc)
    for needles, cause in _CAUSES:
        if any(n in text for n in needles):
            return f"{cause} ({_first_line(exc)[:200]})"
    return "" if known_only else _first_line(exc)[:300]


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def empty_message(report: IngestReport, listing: Listing) -> str:
    return empty_corpus_message(report, listing.source)
