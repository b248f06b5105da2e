"""What the trace views show, computed once from trace records: labels and the fan-out timeline.

No rendering here: `view.py` draws the tree in the terminal, `html.py` the page.
The timeline has one bar per RLM call (on the lane of the REPL worker that ran it) and one per
leaf sub-call (on the lane of the gateway that served it); lanes are grouped by node, and bars
that overlap in time go on separate rows of their lane, so parallel calls show side by side.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

Record = dict[str, Any]


def short_id(value: str | None, n: int = 8) -> str:
    return (value or "?")[:n]


def fmt_s(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def fmt_tokens(input_tokens: int, output_tokens: int) -> str:
    return f"{input_tokens:,}+{output_tokens:,} tok"


def fmt_cost(cost: float) -> str:
    if not cost:
        return "$0"
    return f"${cost:.4f}" if cost >= 0.01 else f"${cost:.6f}"


def role(record: Record) -> str:
    return "root" if record.get("parent_id") is None else "child"


def call_label(record: Record) -> str:
    parts = [
        f"{role(record)} call {record['call_id']}",
        f"depth {record['depth']}",
        str(record.get("model") or ""),
        fmt_s(record["ended_s"] - record["started_s"]),
        fmt_tokens(record.get("total_input_tokens", 0), record.get("total_output_tokens", 0)),
        fmt_cost(record.get("total_cost_usd", 0.0)),
        f"node {short_id(record.get('node_id'))} pid {record.get('pid') or '?'}",
    ]
    if record.get("finished_by"):
        parts.append(f"finished by {record['finished_by']}")
    return " · ".join(parts)


def iteration_label(iteration: Record) -> str:
    if iteration.get("replayed"):  # a program's recorded turn: no model call
        cells = len(iteration["cells"])
        return (
            f"iteration {iteration['index'] + 1} · replayed, no model call · {cells} code cell(s)"
        )
    return " · ".join(
        [
            f"iteration {iteration['index'] + 1}",
            f"model {fmt_s(iteration['llm_duration_s'])}",
            fmt_tokens(iteration["input_tokens"], iteration["output_tokens"]),
            fmt_cost(iteration.get("cost_usd", 0.0)),
            f"{len(iteration['cells'])} code cell(s)",
        ]
    )


def cell_label(number: int, cell: Record) -> str:
    parts = [f"cell {number}", fmt_s(cell["duration_s"]), f"{len(cell['subcalls'])} sub-call(s)"]
    if cell.get("timed_out"):
        parts.append("timed out")
    elif cell.get("error"):
        parts.append("error")
    return " · ".join(parts)


def subcall_label(sub: Record) -> str:
    if sub["kind"] == "tool":
        return tool_label(sub)
    name = "recursive_llm" if sub["kind"] == "rlm" else "llm_query"
    parts = [
        name,
        str(sub.get("model") or ""),
        fmt_s(sub["duration_s"]),
        fmt_tokens(sub["input_tokens"], sub["output_tokens"]),
        fmt_cost(sub.get("cost_usd", 0.0)),
    ]
    server_s = sub.get("server_s")
    if isinstance(server_s, (int, float)):  # the model server's own timings
        waited = max(0.0, sub["duration_s"] - server_s)
        parts.append(f"queued {fmt_s(waited)}, ran {fmt_s(server_s)}")
    if sub.get("node_id"):
        parts.append(f"node {short_id(sub['node_id'])} pid {sub.get('pid') or '?'}")
    if sub.get("error"):
        parts.append("failed")
    return " · ".join(parts)


def tool_label(sub: Record) -> str:
    decision = sub.get("decision") or ("refused" if sub.get("error") else "")
    parts = [f"tool {sub.get('tool') or '?'}", f"effects {sub.get('effects') or '?'}", decision]
    parts.append(fmt_s(sub["duration_s"]))
    if sub.get("node_id"):
        parts.append(f"node {short_id(sub['node_id'])} pid {sub.get('pid') or '?'}")
    if sub.get("error"):
        parts.append("failed")
    return " · ".join(p for p in parts if p)


def by_id(records: list[Record]) -> dict[str, Record]:
    return {r["call_id"]: r for r in records}


def cells_of(record: Record) -> Iterator[Record]:
    for iteration in record["iterations"]:
        yield from iteration["cells"]


def subcalls_of(record: Record) -> Iterator[Record]:
    for cell in cells_of(record):
        yield from cell["subcalls"]


def summary(records: list[Record]) -> str:
    root, line = records[0], timeline(records)
    subcalls = sum(1 for r in records for _ in subcalls_of(r))
    return (
        f"{len(records)} RLM call(s), {subcalls} sub-call(s), {root.get('total_calls', 0)} model calls, "
        f"{fmt_tokens(root.get('total_input_tokens', 0), root.get('total_output_tokens', 0))}, "
        f"{fmt_cost(root.get('total_cost_usd', 0.0))}, {fmt_s(line.end - line.start)} wall; "
        f"{parallel_text(line)} and at most {line.peak_parallel_calls} RLM call(s) at once on "
        f"{sum(1 for n in line.nodes if n.node_id)} node(s)"
    )


def parallel_text(line: Timeline) -> str:
    """How many leaf sub-calls ran at once: by the model server's own timings where it gave
    them (a server with fewer slots than calls queues the rest), else as sent."""
    sent = line.peak_parallel_subcalls
    if not line.server_timed:
        return f"at most {sent} sub-call(s) in flight at once (the server gave no timings)"
    running = line.peak_running_subcalls
    queued = f" ({sent} in flight: the model server queued the rest)" if sent > running else ""
    return f"at most {running} sub-call(s) running at once{queued}"


# -- the timeline --------------------------------------------------------------------------------
@dataclass
class Bar:
    kind: str  # "call" (an RLM call) or "subcall" (a leaf model call, or a child that never ran)
    label: str
    title: str
    start: float
    end: float
    depth: int
    call_id: str  # the call it is (kind "call") or was made by (kind "subcall")
    error: bool = False
    row: int = 0
    running_from: float | None = None
    """A sub-call the model server timed: when it began work on it (it waited in the server's
    queue from `start` until then); None: not known, the whole bar counts as running."""


@dataclass
class Lane:
    key: str  # the actor id, or "" when unknown
    name: str
    bars: list[Bar] = field(default_factory=list)
    rows: int = 1


@dataclass
class NodeGroup:
    node_id: str
    lanes: list[Lane] = field(default_factory=list)


@dataclass
class Timeline:
    start: float
    end: float
    nodes: list[NodeGroup]
    peak_parallel_calls: int  # most RLM calls running at the same moment
    peak_parallel_subcalls: int  # most leaf sub-calls (model calls) in flight at the same moment
    peak_running_subcalls: int = 0  # most of them the model server worked on at once
    server_timed: bool = False  # some sub-call's server gave its timings (`Bar.running_from`)

    @property
    def bars(self) -> list[Bar]:
        return [bar for node in self.nodes for lane in node.lanes for bar in lane.bars]


def timeline(records: list[Record]) -> Timeline:
    placed: dict[tuple[str, str], Lane] = {}
    for node_id, (name, actor_id), bar in _bars(records):
        lane = placed.setdefault((node_id, actor_id), Lane(key=actor_id, name=name))
        lane.bars.append(bar)
    groups: dict[str, NodeGroup] = {}
    for (node_id, _), lane in sorted(placed.items(), key=_lane_order):
        _pack(lane)
        groups.setdefault(node_id, NodeGroup(node_id)).lanes.append(lane)
    bars = [bar for lane in placed.values() for bar in lane.bars]
    start = min((b.start for b in bars), default=0.0)
    end = max((b.end for b in bars), default=start)
    calls = [b for b in bars if b.kind == "call"]
    subcalls = [b for b in bars if b.kind == "subcall"]
    running = [(_ran_from(b), b.end) for b in subcalls]
    return Timeline(
        start,
        max(end, start + 1e-6),
        list(groups.values()),
        _peak([(b.start, b.end) for b in calls]),
        _peak([(b.start, b.end) for b in subcalls]),
        _peak(running),
        any(b.running_from is not None for b in subcalls),
    )


def _lane_order(item: tuple[tuple[str, str], Lane]) -> tuple:
    """Known nodes first; in a node, REPL workers before gateways, each by its first bar."""
    (node_id, actor_id), lane = item
    first = min(b.start for b in lane.bars)
    return (node_id == "", node_id, not lane.name.startswith("REPL"), first, actor_id)


def _bars(records: list[Record]) -> Iterator[tuple[str, tuple[str, str], Bar]]:
    """(node id, (lane name, actor id), bar) for every call and leaf sub-call."""
    for record in records:
        tokens = fmt_tokens(
            record.get("total_input_tokens", 0), record.get("total_output_tokens", 0)
        )
        yield (
            record.get("node_id") or "",
            (f"REPL worker pid {record.get('pid') or '?'}", record.get("actor_id") or ""),
            Bar(
                "call",
                f"d{record['depth']} {role(record)} · {tokens}",
                call_label(record),
                record["started_s"],
                record["ended_s"],
                record["depth"],
                record["call_id"],
                error=bool(record.get("error")),
            ),
        )
        for sub in subcalls_of(record):
            if sub.get("child_id"):
                continue  # the child's own call bar shows it
            name = f"gateway pid {sub['pid']}" if sub.get("pid") else "not placed (no reply)"
            lane = sub.get("actor_id") or ""
            short = f"d{record['depth'] + 1} llm · {fmt_tokens(sub['input_tokens'], sub['output_tokens'])}"
            if sub["kind"] == "tool":  # on the lane of the tool host that ran it
                name = f"tool host pid {sub['pid']}" if sub.get("pid") else "tool (not run)"
                short = f"tool {sub.get('tool') or '?'}"
            yield (
                sub.get("node_id") or "",
                (name, lane),
                Bar(
                    "subcall",
                    short,
                    subcall_label(sub) + " · " + str(sub.get("prompt_preview") or "")[:80],
                    sub["started_s"],
                    sub["ended_s"],
                    record["depth"] + 1,
                    record["call_id"],
                    error=bool(sub.get("error")),
                    running_from=_running_from(sub),
                ),
            )


_DELIVERY_SLACK_S = 0.25


def _ran_from(bar: Bar) -> float:
    """When a sub-call surely ran, for counting how many ran at once.

    subtle: `running_from` is `ended_s - server_s` on the gateway's clock, and `ended_s` is
    when the answer reached the gateway, a little after the server let go of its slot: one
    slot's calls, back to back at the server, overlap by that delivery time at the gateway.
    Counting each from a quarter of its run (at most 0.25 s) later keeps them apart; calls
    that ran together on two slots overlap by nearly all of their run, and still count."""
    if bar.running_from is None:
        return bar.start
    return bar.running_from + min(_DELIVERY_SLACK_S, (bar.end - bar.running_from) / 4)


def _running_from(sub: Record) -> float | None:
    """When the model server began work on a sub-call, by its own timings (None: unknown)."""
    server_s = sub.get("server_s")
    if not isinstance(server_s, (int, float)) or sub.get("error"):
        return None
    return max(sub["started_s"], sub["ended_s"] - server_s)


def _pack(lane: Lane) -> None:
    """Put each bar on the first row where it overlaps no earlier bar.

    subtle: n log n. The bars are the model's fan-out (100,000 sub-calls started at once make
    100,000 rows), so rows are not scanned per bar: as bars come in order of start, a row whose
    last bar ended by then stays free until it is taken, and the lowest free row is a heap's."""
    busy: list[tuple[float, int]] = []  # (end of its last bar, row)
    free: list[int] = []
    rows = 0
    for bar in sorted(lane.bars, key=lambda b: (b.start, b.end)):
        while busy and busy[0][0] <= bar.start:
            heapq.heappush(free, heapq.heappop(busy)[1])
        if free:
            bar.row = heapq.heappop(free)
        else:
            bar.row, rows = rows, rows + 1
        heapq.heappush(busy, (bar.end, bar.row))
    lane.bars.sort(key=lambda b: (b.row, b.start))
    lane.rows = max(1, rows)


def _peak(spans: list[tuple[float, float]]) -> int:
    """The most (start, end) spans open at one moment (one that ends as another starts: not
    both)."""
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    peak = running = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak
