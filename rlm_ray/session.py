"""`Session`: follow-up questions over one context, in one REPL that keeps its variables.

    with rlm.session(context) as s:       the context put into the object store once;
        s.completion(q1)                  one REPL worker pinned to the session (pool.py)
        s.completion(q2)                  same REPL: q1's variables are still there
    s.usage                               every question's usage, added up

Each question is an ordinary root call (budgets, progress, trace, `Result`) that runs on the
session's pinned worker, in the REPL it keeps between questions (`runtime/worker.py`). Its first
turn lists the session's variables and the earlier questions and answers (`session_repl.py`).
The session records every cell that ran without error; if its worker's process is lost, the
next question rebuilds the REPL from them and the model is told what could not be restored.

A session is closed by `close()`, by leaving its `with` block, when it is garbage collected and
when the driver exits (atexit): the pool kills its worker and frees its slot. The pool and every
worker are owned by the driver, so nothing outlives a driver that dies without closing either.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

from rlm_ray.errors import ConfigError, RLMError
from rlm_ray.redact import redact_error, redact_tree
from rlm_ray.types import Result, Usage

if TYPE_CHECKING:
    from rlm_ray.rlm import RLM
    from rlm_ray.session_repl import RecordedCell

# subtle: `import rlm_ray` imports this module, which must not import the REPL (RestrictedPython,
# pyarrow): `session_repl` is imported when a question is asked.

_CLOSE_WAIT_S = 10.0
_OPEN: weakref.WeakSet[Session] = weakref.WeakSet()
_ATEXIT = threading.Lock()
_atexit_registered = False


class Session:
    """Follow-up questions over one context, sharing one REPL. Made by `RLM.session(context)`."""

    def __init__(self, rlm: RLM, context: Any, open_timeout_s: float = 60.0) -> None:
        import ray

        from rlm_ray import runtime
        from rlm_ray.rlm import _is_arrow_table, _is_corpus

        if not isinstance(open_timeout_s, (int, float)) or open_timeout_s < 0:
            raise ConfigError(f"`open_timeout_s` must be a number >= 0, got {open_timeout_s!r}")
        if rlm.config.max_depth < 1:
            raise ConfigError("a session keeps a REPL between questions: it needs `max_depth` >= 1")
        self._rlm = rlm
        self.session_id = runtime.new_run_id()
        self.history: list[tuple[str, str]] = []
        """The questions asked so far and their answers (a failed one: its error)."""
        self.usage = Usage()
        """Model usage of every question of the session, added up."""
        self.results: list[Result] = []
        self._cells: list[RecordedCell] = []
        self._variables: dict[str, str] = {}
        self._busy = threading.Lock()
        self._closed = True  # until it is open
        self._warmed = False  # the root prompt's fixed start, on the local servers (first question)
        runtime.ensure_ray(rlm.address)
        self._runtime = runtime.get_runtime(rlm.config)
        if _is_arrow_table(context):
            context = rlm._put_corpus(context)
        # Put into the object store once for the whole session: every question gets the handle.
        # A corpus is there already (this object keeps it alive).
        self._context = context
        self._context_ref = None if _is_corpus(context) else ray.put(context)
        self._servers = rlm._local_servers()
        pool = self._runtime.pool
        try:
            opened = pool.open_session.remote(
                self.session_id, rlm.config.max_depth, self._context_ref, float(open_timeout_s)
            )
            ray.get(opened)
        except BaseException as exc:
            _stop_servers(self._servers)
            error = runtime.unwrap(exc)
            if isinstance(error, RLMError):
                raise error from None
            raise
        self._closed = False
        # Garbage collection and driver exit close it too (fire and forget: the pool does it).
        self._finalizer = weakref.finalize(self, _release, pool, self.session_id, self._servers)
        _OPEN.add(self)
        _register_atexit()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Session {self.session_id} {state}, {len(self.history)} question(s)>"

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """End the session: its worker and REPL go, its REPL slot is free again. Idempotent."""
        if self._closed:
            return
        self._closed = True
        _OPEN.discard(self)
        if self._finalizer.detach() is None:
            return  # collected meanwhile
        import ray

        try:
            ray.get(self._runtime.pool.close_session.remote(self.session_id), timeout=_CLOSE_WAIT_S)
        except Exception:  # a dead pool (driver shutting down): its workers went with it
            pass
        finally:
            _stop_servers(self._servers)

    def completion(self, query: str) -> Result:
        """Answer `query` in this session (blocks); its `Result` has the usage and trace of
        this question. Works inside a running event loop too (the question gets a thread)."""
        from rlm_ray.rlm import _run_in_thread

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.acompletion(query))
        return _run_in_thread(lambda: asyncio.run(self.acompletion(query)))

    async def acompletion(self, query: str) -> Result:
        """`completion` for async code. One question at a time per session."""
        from rlm_ray.rlm import _check_query

        if self._closed:
            raise ConfigError(
                f"session {self.session_id} is closed: open a new one with `rlm.session(context)`"
            )
        query = _check_query(query)
        if not self._busy.acquire(blocking=False):
            raise ConfigError(
                "a session answers one question at a time: wait for the previous `completion`"
            )
        try:
            return await self._ask(query)
        finally:
            self._busy.release()

    async def _ask(self, query: str) -> Result:
        from rlm_ray import runtime
        from rlm_ray.session_repl import Exchange, SessionTurn, record_cells

        rlm, started = self._rlm, time.time()
        models = rlm.models
        if self._servers is not None:
            models = _with_servers(models, self._servers)
        await rlm._prepare_gateways(self._runtime)  # windows from a gateway: no litellm here
        spec = rlm._root_spec(query, self._context, models, self._context_ref)
        if self._servers is not None and not self._warmed:  # the servers live for the session
            from rlm_ray.rlm import _warm_root_prefix

            await asyncio.to_thread(_warm_root_prefix, self._servers, spec)
            self._warmed = True
        turn = SessionTurn(
            session_id=self.session_id,
            history=tuple(Exchange(q, a) for q, a in self.history),
            cells=tuple(self._cells),
            variables=dict(self._variables),
            replay_subcalls=rlm.config.cache_dir is not None,
        )
        secrets = rlm._secrets()
        try:
            result = await runtime.run_root(self._runtime, spec, rlm.on_progress, rlm.approve, turn)
        except RLMError as exc:
            self._cells += record_cells(exc.trace)
            self.history.append((query, f"(no answer: {type(exc).__name__}: {exc})"))
            redact_error(exc, secrets)
            redact_tree(exc.trace, secrets)
            raise
        done = time.time()
        self._cells += record_cells(result.trace)
        self._variables = dict(getattr(result, "variables", {}))
        self.history.append((query, result.answer))
        self.usage.add(result.usage)
        redact_tree(result.trace, secrets)
        timings = {"startup_s": 0.0, "run_s": done - started, "total_s": done - started}
        answer = Result(result.answer, result.usage, result.trace, timings)
        self.results.append(answer)
        return answer


def _with_servers(models: Any, servers: Any) -> Any:
    import dataclasses

    return dataclasses.replace(models, local_servers=servers.api_bases)


def _release(pool: Any, session_id: str, servers: Any) -> None:
    """A session dropped without `close()`: tell the pool (no wait: this may run inside
    garbage collection or at exit)."""
    try:
        pool.close_session.remote(session_id)
    except Exception:  # Ray already shut down: the pool and its workers are gone with it
        pass
    _stop_servers(servers)


def _stop_servers(servers: Any) -> None:
    if servers is None:
        return
    from rlm_ray import model_servers

    try:
        model_servers.stop_servers(servers)
    except Exception:
        pass


def _close_all_at_exit() -> None:
    for session in list(_OPEN):
        session.close()


def _register_atexit() -> None:
    # subtle: registered after `ray.init` (the first session comes after it), so it runs before
    # Ray's own atexit shutdown (atexit runs last-registered first) while the pool is reachable.
    global _atexit_registered
    with _ATEXIT:
        if not _atexit_registered:
            atexit.register(_close_all_at_exit)
            _atexit_registered = True
