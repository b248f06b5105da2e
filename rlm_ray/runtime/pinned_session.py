"""`PinnedSession`: the Ray side of a session (`rlm_ray.session.Session`): its context put into
the object store once, its local model servers, the REPL worker the pool pins to it, and each
question run as a root call on that worker (`Launcher.run` with the question's `SessionTurn`).

A pinned session is released by `close()`, when it is garbage collected (its `Session` was
dropped) and when the driver exits (atexit): the pool kills its worker and frees its slot. The
pool and every worker are owned by the driver, so nothing outlives a driver that dies anyway.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
import weakref
from typing import TYPE_CHECKING, Any

import ray

from rlm_ray.core.spec import new_run_id
from rlm_ray.errors import RLMError
from rlm_ray.runtime.ray_basics import unwrap

if TYPE_CHECKING:
    from rlm_ray.core.session_repl import SessionCallResult, SessionTurn
    from rlm_ray.runtime.run import Launcher

_CLOSE_WAIT_S = 10.0
_OPEN: weakref.WeakSet[PinnedSession] = weakref.WeakSet()
_ATEXIT = threading.Lock()
_atexit_registered = False


class PinnedSession:
    """A session's context, servers and pinned REPL worker. Opening blocks until the pool has a
    slot for it (at most `open_timeout_s`, then `SandboxError`)."""

    def __init__(self, launcher: Launcher, context: Any, open_timeout_s: float) -> None:
        self.launcher = launcher
        self.session_id = new_run_id()
        self._runtime = launcher.connect_blocking()
        # Put into the object store once for the whole session: every question gets the
        # handle. A corpus is there already (this object keeps its view alive).
        self._context = launcher.put_context(context)
        self._servers = launcher.start_servers()
        self._warmed = False  # the root prompt's fixed start, on the local servers
        pool = self._runtime.pool
        config = launcher.settings.config
        try:
            opened = pool.open_session.remote(
                self.session_id, config.max_depth, self._context[0], float(open_timeout_s)
            )
            ray.get(opened)
        except BaseException as exc:
            launcher.stop_servers(self._servers)
            error = unwrap(exc)
            if isinstance(error, RLMError):
                raise error from None
            raise
        self.closed = False
        self._finalizer = weakref.finalize(self, _release, pool, self.session_id, self._servers)
        _OPEN.add(self)
        _register_atexit()

    @property
    def context(self) -> Any:
        """The session's context as its questions get it: a corpus view, or its handle."""
        handle, view = self._context
        return view if view is not None else handle

    async def ask(self, query: str, turn: SessionTurn) -> SessionCallResult:
        """One question as a root call on the pinned worker; its `SessionCallResult` carries
        the session's variables after it."""
        launcher = self.launcher
        launcher.prewarm(self._runtime, root=False)  # the session's worker is its root's
        await launcher.prepare(self._runtime)  # windows from a gateway: no litellm here
        spec = launcher.root_spec(query, self._context, self._servers)
        if not self._warmed:  # the servers live as long as the session
            await asyncio.to_thread(launcher.warm_prefix, self._servers, spec)
            self._warmed = True
        return await launcher.run(self._runtime, spec, turn)  # type: ignore[return-value]

    def close(self) -> None:
        """The worker and its REPL go, the slot is free again. Idempotent."""
        if self.closed:
            return
        self.closed = True
        _OPEN.discard(self)
        if self._finalizer.detach() is None:
            return  # collected meanwhile
        try:
            closing = self._runtime.pool.close_session.remote(self.session_id)
            ray.get(closing, timeout=_CLOSE_WAIT_S)
        except Exception:  # a dead pool (driver shutting down): its workers went with it
            pass
        finally:
            _stop_servers(self.launcher, self._servers)


def _release(pool: Any, session_id: str, servers: Any) -> None:
    """A session dropped without `close()`: tell the pool (no wait: this may run inside
    garbage collection or at exit)."""
    try:
        pool.close_session.remote(session_id)
    except Exception:  # Ray already shut down: the pool and its workers are gone with it
        pass
    if servers is not None:
        from rlm_ray.runtime import model_servers

        try:
            model_servers.stop_servers(servers)
        except Exception:
            pass


def _stop_servers(launcher: Launcher, servers: Any) -> None:
    try:
        launcher.stop_servers(servers)
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
