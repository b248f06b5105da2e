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

This facade keeps the session's history; its context, servers and worker are the driver's
`runtime.pinned_session.PinnedSession`, which also closes it when it is garbage collected or
when the driver exits.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from rlm_ray.errors import ConfigError, RLMError
from rlm_ray.front.blocking import run_blocking
from rlm_ray.front.inputs import check_query
from rlm_ray.types import Result, Usage

if TYPE_CHECKING:
    from rlm_ray.core.session_repl import RecordedCell
    from rlm_ray.runtime import Launcher, PinnedSession

# subtle: `import rlm_ray` imports this module, which must not import the REPL (RestrictedPython,
# pyarrow) nor Ray: `session_repl` and the runtime are imported when a session opens.


class Session:
    """Follow-up questions over one context, sharing one REPL. Made by `RLM.session(context)`."""

    def __init__(self, pinned: PinnedSession) -> None:
        self._pinned = pinned
        self.session_id = pinned.session_id
        self.history: list[tuple[str, str]] = []
        """The questions asked so far and their answers (a failed one: its error)."""
        self.usage = Usage()
        """Model usage of every question of the session, added up."""
        self.results: list[Result] = []
        self._cells: list[RecordedCell] = []
        self._variables: dict[str, str] = {}
        self._busy = threading.Lock()

    @classmethod
    def open(cls, launcher: Launcher, context: Any, open_timeout_s: float = 60.0) -> Session:
        """Open a session over `context` (checked) on `launcher`'s runtime. Blocks until the
        pool pins a worker to it."""
        if not isinstance(open_timeout_s, (int, float)) or open_timeout_s < 0:
            raise ConfigError(f"`open_timeout_s` must be a number >= 0, got {open_timeout_s!r}")
        if launcher.settings.config.max_depth < 1:
            raise ConfigError("a session keeps a REPL between questions: it needs `max_depth` >= 1")
        from rlm_ray.runtime import PinnedSession

        return cls(PinnedSession(launcher, context, open_timeout_s))

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Session {self.session_id} {state}, {len(self.history)} question(s)>"

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._pinned.closed

    @property
    def context(self) -> Any:
        """The session's context as its questions get it: a corpus view, or its handle."""
        return self._pinned.context

    def close(self) -> None:
        """End the session: its worker and REPL go, its REPL slot is free again. Idempotent."""
        self._pinned.close()

    def completion(self, query: str) -> Result:
        """Answer `query` in this session (blocks); its `Result` has the usage and trace of
        this question. Works inside a running event loop too (the question gets a thread)."""
        return run_blocking(lambda: self.acompletion(query))

    async def acompletion(self, query: str) -> Result:
        """`completion` for async code. One question at a time per session."""
        if self.closed:
            raise ConfigError(
                f"session {self.session_id} is closed: open a new one with `rlm.session(context)`"
            )
        query = check_query(query)
        if not self._busy.acquire(blocking=False):
            raise ConfigError(
                "a session answers one question at a time: wait for the previous `completion`"
            )
        try:
            return await self._ask(query)
        finally:
            self._busy.release()

    async def _ask(self, query: str) -> Result:
        from rlm_ray.core.session_repl import Exchange, SessionTurn, record_cells

        started = time.time()
        turn = SessionTurn(
            session_id=self.session_id,
            history=tuple(Exchange(q, a) for q, a in self.history),
            cells=tuple(self._cells),
            variables=dict(self._variables),
            replay_subcalls=self._pinned.launcher.settings.config.cache_dir is not None,
        )
        try:
            result = await self._pinned.ask(query, turn)
        except RLMError as exc:
            self._cells += record_cells(getattr(exc, "trace", None))
            self.history.append((query, f"(no answer: {type(exc).__name__}: {exc})"))
            raise
        done = time.time()
        self._cells += record_cells(result.trace)
        self._variables = dict(result.variables)
        self.history.append((query, result.answer))
        self.usage.add(result.usage)
        timings = {"startup_s": 0.0, "run_s": done - started, "total_s": done - started}
        answer = Result(result.answer, result.usage, result.trace, timings)
        self.results.append(answer)
        return answer
