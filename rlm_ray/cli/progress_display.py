"""The CLI's live progress on stderr (the only rich import).

On a terminal: a table redrawn with each snapshot (calls in flight, held and done per depth;
how many a model server is working on and how many are queued, when it says; tokens, cost,
elapsed), left on screen when the run ends; before the run, the start-up stage it waits for. Anywhere else (a pipe, a log file, CI): nothing
while the run goes, so logs stay clean. Either way one summary line at the end:

    rlm-ray: 1,026 model calls (depth 0: 1/1 RLM, 2/2 model; depth 1: 1024/1024 model); ...
"""

from __future__ import annotations

from types import TracebackType
from typing import TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from rlm_ray.progress import Progress


class ProgressDisplay:
    """A context manager whose `update` is an `on_progress` callback."""

    def __init__(self, file: TextIO) -> None:
        self._console = Console(file=file, highlight=False)
        self._live: Live | None = None
        self._last: Progress | None = None

    def __enter__(self) -> ProgressDisplay:
        if self._console.is_terminal:
            self._live = Live(console=self._console, auto_refresh=False, transient=False)
            self._live.start()
        return self

    def update(self, snapshot: Progress) -> None:
        self._last = snapshot
        if self._live is not None:
            self._live.update(render(snapshot), refresh=True)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.stop()
        if self._last is not None:
            self._console.print(Text(f"rlm-ray: {self._last.summary()}"), soft_wrap=True)


def render(snapshot: Progress) -> Group:
    if snapshot.stage:  # before the run: what start-up is waiting for
        return Group(Text(f"starting: {snapshot.stage} · {snapshot.elapsed_s:.1f} s"))
    table = Table(box=None, pad_edge=False, header_style="bold")
    names = ("depth", "RLM calls done", "RLM in flight", "model calls done", "model in flight")
    for name in (*names, "held"):
        table.add_column(name, justify="right")
    for d in snapshot.depths:
        table.add_row(
            str(d.depth),
            f"{d.rlm_done:,}",
            f"{d.rlm_in_flight:,}",
            f"{d.done:,}",
            f"{d.in_flight:,}",
            f"{d.held:,}",
        )
    cached = f" ({snapshot.cached_calls:,} cached)" if snapshot.cached_calls else ""
    footer = Text(
        f"{snapshot.calls:,} model calls{cached}{_now(snapshot)} · {snapshot.input_tokens:,} "
        f"tokens in, {snapshot.output_tokens:,} out · ${snapshot.cost_usd:.4f} · "
        f"{snapshot.elapsed_s:.1f} s"
    )
    stages = [Text(f"cascade · {line}") for line in snapshot.stages]  # approximate operators
    return Group(table, footer, *stages)


def _now(snapshot: Progress) -> str:
    """What the calls not done are doing: running at a model server (when it says), queued."""
    if snapshot.running is not None:
        return f" · {snapshot.running:,} running, {snapshot.queued:,} queued"
    if snapshot.queued:
        return f" · {snapshot.in_flight:,} in flight, {snapshot.queued:,} queued"
    return ""
