"""The opt-in model-call cache: one SQLite file per cache directory, shared by every process of a node.

    RLM(..., cache_dir="~/.cache/rlm-ray")      rlm-ray run ... --cache DIR

Every model call passes through a gateway actor; with a cache directory the gateway first looks
the call up by its key, and stores each new reply. Re-running the same job then makes no model
calls. The key is the sha256 of the canonical JSON of (model, messages, sampling parameters: every
litellm keyword such as temperature, top_p, stop, max_tokens, seed, response_format); it leaves
out what cannot change the reply or must not be stored: the API key, `api_base`, headers and
timeouts. So a model served at a new address still hits, and no secret ever reaches the file.

A hit is an `LLMReply` with `cached=True`, the stored tokens, `cost_usd=0.0` (no new spend) and
`attempts=0`; `Usage.cached_calls` counts them. Replies are replayed as they were: with a
temperature above 0 a re-run repeats the first run's answers, which is the point of the cache.

Why SQLite (stdlib) rather than Parquet: lookups are by key, one at a time, from several
processes at once while they write. SQLite gives indexed point lookups and atomic concurrent
appends (WAL mode: readers never wait for the writer, writers queue on a lock for microseconds);
Parquet files are immutable, so concurrent appends would mean a file per write and a scan per
lookup. Identical calls in flight at the same moment are not merged: both miss and both store.

Failures: a directory that cannot hold the database (a file in the way, no permission, a corrupt
or foreign database file) is a `ConfigError` when the `RLM` is built. Once a run is going, a read
that fails is a miss and a write that fails is skipped with a warning (the cache only saves work;
it never stops a run). Delete the directory to empty the cache.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
import time
import warnings
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rlm_ray.errors import ConfigError
from rlm_ray.models.llm import LLMRequest
from rlm_ray.types import LLMReply

DB_NAME = "calls.sqlite3"
_SCHEMA_VERSION = 1
_KEY_VERSION = "rlm-ray-call-cache-v1"
# litellm keywords that cannot change the reply (or hold secrets): never part of the key.
_NOT_IN_KEY = frozenset(
    {"api_key", "api_base", "base_url", "headers", "extra_headers", "timeout", "num_retries"}
    | {"max_retries", "metadata"}
)
_BUSY_TIMEOUT_MS = 10_000
_COLUMNS = "key, model, text, input_tokens, output_tokens, cost_usd, created_s"


def check_cache_dir(path: Any) -> str:
    """The absolute cache directory (created if missing); `ConfigError` if it cannot be used.

    Absolute, because Ray workers do not share the driver's working directory."""
    if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
        raise ConfigError(f"`cache_dir` must be a directory path, got {path!r}")
    directory = Path(path).expanduser().resolve()
    CallCache(str(directory)).close()  # opens, checks the schema and that writes work
    return str(directory)


def cache_key(model: str, messages: list, kwargs: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of what decides a reply (never keys, URLs or headers)."""
    params = {k: v for k, v in kwargs.items() if k not in _NOT_IN_KEY}
    document = {"v": _KEY_VERSION, "model": model, "messages": messages, "params": params}
    text = json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_as_json
    )
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _as_json(value: Any) -> Any:
    # e.g. `response_format=SomePydanticModel`: its schema decides the reply, not its identity
    schema = getattr(value, "model_json_schema", None)
    if callable(schema):
        return schema()
    return repr(value)


class CallCache:
    """One cache directory, opened by one process (a gateway, or the driver to check it).

    Lookups run on the caller's thread (WAL readers never block); writes run on one writer
    thread with its own connection, so a writer waiting for the file lock never stalls the
    gateway's event loop."""

    def __init__(self, directory: str) -> None:
        self.path = Path(directory) / DB_NAME
        try:
            Path(directory).mkdir(parents=True, exist_ok=True)
            self._writer_db = _connect(self.path, check_same_thread=False)
            _check_schema(self._writer_db)
            self._reader_db = _connect(self.path)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(
                f"`cache_dir` {directory!r} cannot hold the call cache: {exc}"
            ) from None
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rlm-ray-cache")
        self._warned = False

    async def complete(
        self, request: LLMRequest, call: Callable[[LLMRequest], Awaitable[LLMReply]]
    ) -> LLMReply:
        """The stored reply, or `call(request)`'s reply once it is stored."""
        key = cache_key(request.model, request.messages, request.kwargs)
        hit = self.get(key)
        if hit is not None:
            return hit
        reply = await call(request)
        # Stored before the reply is returned: a run that ends must find all of its calls.
        await asyncio.get_running_loop().run_in_executor(self._writer, self.put, key, reply)
        return reply

    def get(self, key: str) -> LLMReply | None:
        try:
            row = self._reader_db.execute(
                "SELECT model, text, input_tokens, output_tokens FROM calls WHERE key = ?", (key,)
            ).fetchone()
        except sqlite3.Error as exc:
            self._warn("read", exc)
            return None
        if row is None:
            return None
        model, text, input_tokens, output_tokens = row
        return LLMReply(
            text=text,
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=0.0,
            latency_s=0.0,
            attempts=0,
            cached=True,
        )

    def put(self, key: str, reply: LLMReply) -> None:
        row = (key, reply.model, reply.text, reply.input_tokens, reply.output_tokens)
        try:
            with self._writer_db:  # one transaction, committed on exit
                self._writer_db.execute(
                    f"INSERT OR IGNORE INTO calls ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (*row, reply.cost_usd, time.time()),
                )
        except sqlite3.Error as exc:
            self._warn("write", exc)

    def __len__(self) -> int:
        return int(self._reader_db.execute("SELECT count(*) FROM calls").fetchone()[0])

    def close(self) -> None:
        self._writer.shutdown(wait=True)
        self._writer_db.close()
        self._reader_db.close()

    def _warn(self, what: str, exc: sqlite3.Error) -> None:
        if not self._warned:  # once per process: a full disk must not flood the log
            self._warned = True
            warnings.warn(f"rlm-ray call cache {self.path}: {what} failed: {exc}", stacklevel=3)


def _connect(path: Path, *, check_same_thread: bool = True) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_MS / 1000, check_same_thread=check_same_thread)
    db.execute("PRAGMA journal_mode=WAL")  # fails here on a file that is not a database
    db.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; a crash loses no old rows
    return db


def _check_schema(db: sqlite3.Connection) -> None:
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version not in (0, _SCHEMA_VERSION):
        raise sqlite3.DatabaseError(
            f"the database has schema version {version}, this rlm-ray writes {_SCHEMA_VERSION}"
        )
    db.execute("BEGIN IMMEDIATE")  # takes the write lock: proves this process can write here
    try:
        db.execute(
            "CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, model TEXT NOT NULL,"
            " text TEXT NOT NULL, input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,"
            " cost_usd REAL NOT NULL, created_s REAL NOT NULL) WITHOUT ROWID"
        )
        db.execute(f"SELECT {_COLUMNS} FROM calls LIMIT 0")  # a foreign `calls` table fails here
        db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
        db.commit()
    except BaseException:
        db.rollback()
        raise
