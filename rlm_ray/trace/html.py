"""`rlm-ray trace FILE --html OUT`: one self-contained HTML page of a run.

The page has a timeline of the fan-out (one lane per REPL worker and gateway, grouped by node; a
bar per RLM call and per leaf sub-call, placed by its start and end, so calls that ran in
parallel overlap) and the collapsible call tree (`<details>`: call, iteration, cell, sub-call).
CSS and JS are inline; nothing is loaded from the network. Every text from the run is escaped,
and the script reads no run data, so code or outputs holding HTML cannot inject anything.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from rlm_ray.trace import summary as ts
from rlm_ray.trace.file import trees

Record = dict[str, Any]
_ROW_PX = 20
_MIN_WIDTH_PCT = 0.25  # a 1 ms call on a 10 s timeline still shows
_TICKS = 5


def write_html(records: list[Record], path: str | Path) -> None:
    Path(path).write_text(render_html(records), encoding="utf-8")


def render_html(records: list[Record]) -> str:
    """The page of a trace file: one timeline, and each call tree (a chat session's file holds
    one per question) with its summary and query."""
    calls = ts.by_id(records)
    roots = [tree[0] for tree in trees(records)]
    title = f"rlm-ray trace {roots[0]['call_id']}"
    if len(roots) > 1:
        title += f" (+{len(roots) - 1} more questions)"
    heads = [
        f'<p class="summary">{_e(ts.summary(tree))}</p>'
        f'<p class="query">query: {_e(_clip(tree[0]["query"], 300))}</p>'
        for tree in trees(records)
    ]
    return "".join(
        [
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
            f"<header><h1>{_e(title)}</h1>{''.join(heads)}</header>",
            _timeline(ts.timeline(records)),
            '<section id="tree"><h2>Call tree</h2><div class="toolbar">',
            '<button type="button" id="expand-all">Expand all</button>',
            '<button type="button" id="collapse-all">Collapse all</button></div>',
            *(_call(root, calls, open_=len(roots) == 1) for root in roots),
            f"</section><script>{_JS}</script></body></html>\n",
        ]
    )


# -- the timeline --------------------------------------------------------------------------------
def _timeline(line: ts.Timeline) -> str:
    span = line.end - line.start
    parts = [
        '<section id="timeline"><h2>Fan-out timeline</h2>',
        '<p class="legend"><span class="bar call-bar depth-0">RLM call</span> ',
        '<span class="bar subcall-bar">leaf model call</span> ',
        '<span class="bar subcall-bar queued" style="--queued:50%">queued, then running</span> ',
        '<span class="bar call-bar error">failed</span> · click a bar to open its call</p>',
        '<div class="axis"><div class="lane-label"></div><div class="track">',
    ]
    for i in range(_TICKS + 1):
        pct = 100 * i / _TICKS
        parts.append(
            f'<span class="tick" style="left:{pct:.2f}%">{_e(ts.fmt_s(span * i / _TICKS))}</span>'
        )
    parts.append("</div></div>")
    for node in line.nodes:
        label = f"node {ts.short_id(node.node_id, 12)}" if node.node_id else "node unknown"
        parts.append(
            f'<div class="node" data-node="{_e(node.node_id)}">'
            f'<div class="node-label" title="{_e(node.node_id)}">{_e(label)}</div>'
        )
        for lane in node.lanes:
            parts.append(_lane(lane, line.start, span))
        parts.append("</div>")
    parts.append("</section>")
    return "".join(parts)


def _lane(lane: ts.Lane, start: float, span: float) -> str:
    parts = [
        f'<div class="lane" data-actor="{_e(lane.key)}" data-rows="{lane.rows}">',
        f'<div class="lane-label" title="actor {_e(lane.key)}">{_e(lane.name)}</div>',
        f'<div class="track" style="height:{lane.rows * _ROW_PX}px">',
    ]
    for bar in lane.bars:
        left = 100 * (bar.start - start) / span
        width = max(_MIN_WIDTH_PCT, 100 * (bar.end - bar.start) / span)
        classes = f"bar {bar.kind}-bar depth-{min(bar.depth, 4)}" + (" error" if bar.error else "")
        queued = ""
        if bar.running_from is not None and bar.end > bar.start:  # its wait in the server's queue
            classes += " queued"
            share = 100 * (bar.running_from - bar.start) / (bar.end - bar.start)
            queued = f"--queued:{share:.1f}%;"
        parts.append(
            f'<div class="{classes}" data-call="{_e(bar.call_id)}" data-depth="{bar.depth}" '
            f'style="left:{left:.3f}%;width:{min(width, 100 - left):.3f}%;{queued}'
            f'top:{bar.row * _ROW_PX}px" title="{_e(bar.title)}">{_e(bar.label)}</div>'
        )
    parts.append("</div></div>")
    return "".join(parts)


# -- the tree ------------------------------------------------------------------------------------
def _call(call: Record, calls: dict[str, Record], open_: bool = False) -> str:
    error = " error" if call.get("error") else ""
    parts = [
        f'<details class="call{error}" id="call-{_e(call["call_id"])}"'
        f' data-call="{_e(call["call_id"])}"{" open" if open_ else ""}>',
        f"<summary>{_e(ts.call_label(call))}</summary>",
        f'<div class="field">query: {_e(_clip(call["query"], 500))}</div>',
    ]
    if call.get("error"):
        parts.append(f'<pre class="error">{_e(call["error"])}</pre>')
    for iteration in call["iterations"]:
        parts.append(_iteration(iteration, calls, open_))
    if call.get("answer") is not None:
        parts.append(f'<div class="answer">answer: {_e(call["answer"])}</div>')
    parts.append("</details>")
    return "".join(parts)


def _iteration(iteration: Record, calls: dict[str, Record], open_: bool) -> str:
    parts = [
        f'<details class="iteration"{" open" if open_ else ""}>',
        f"<summary>{_e(ts.iteration_label(iteration))}</summary>",
        f'<pre class="response">{_e(iteration["response"])}</pre>',
    ]
    for number, cell in enumerate(iteration["cells"], 1):
        parts.append(_cell(number, cell, calls))
    parts.append("</details>")
    return "".join(parts)


def _cell(number: int, cell: Record, calls: dict[str, Record]) -> str:
    error = " error" if cell.get("error") else ""
    parts = [
        f'<details class="cell{error}"><summary>{_e(ts.cell_label(number, cell))}</summary>',
        f'<pre class="code">{_e(cell["code"])}</pre>',
    ]
    if cell["output"]:
        parts.append(f'<pre class="output">{_e(cell["output"])}</pre>')
    if cell.get("error"):
        parts.append(f'<pre class="error">{_e(cell["error"])}</pre>')
    if cell["subcalls"]:
        parts.append('<ul class="subcalls">')
        for sub in cell["subcalls"]:
            parts.append(_subcall(sub, calls))
        parts.append("</ul>")
    parts.append("</details>")
    return "".join(parts)


def _subcall(sub: Record, calls: dict[str, Record]) -> str:
    error = " error" if sub.get("error") else ""
    parts = [
        f'<li class="subcall {_e(sub["kind"])}{error}">',
        f'<span class="label">{_e(ts.subcall_label(sub))}</span>',
        f'<div class="prompt">{_e(sub.get("prompt_preview") or "")}</div>',
    ]
    if sub.get("result_preview"):  # what the code got back: an answer, a tool's result
        parts.append(f'<div class="prompt">= {_e(sub["result_preview"])}</div>')
    if sub.get("error"):
        parts.append(f'<pre class="error">{_e(sub["error"])}</pre>')
    child = calls.get(sub.get("child_id") or "")
    if child is not None:
        parts.append(_call(child, calls))
    parts.append("</li>")
    return "".join(parts)


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[:n] + " ..."


_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:16px;color:#222;background:#fff}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:18px 0 6px}
.summary,.query{margin:2px 0;color:#444}
.legend .bar{position:static;display:inline-block;padding:0 6px;height:16px}
.axis,.lane{display:flex;align-items:stretch}
.lane-label{flex:0 0 190px;font-size:12px;color:#555;padding-right:6px;overflow:hidden;
  white-space:nowrap;text-overflow:ellipsis}
.track{position:relative;flex:1;min-width:300px;border-left:1px solid #bbb}
.axis .track{height:18px;border-left:none}
.tick{position:absolute;font-size:11px;color:#777;white-space:nowrap;transform:translateX(-50%)}
.tick:first-child{transform:none}.tick:last-child{transform:translateX(-100%)}
.node{border:1px solid #ccd;border-radius:4px;margin:6px 0;padding:4px;background:#f8f9fc}
.node-label{font-weight:600;font-size:12px;margin-bottom:2px}
.lane{border-top:1px dashed #dde;padding:2px 0}
.lane .track{background:repeating-linear-gradient(90deg,#fff,#fff 19.9%,#eee 20%)}
.bar{position:absolute;height:16px;border-radius:3px;font-size:11px;line-height:16px;
  overflow:hidden;white-space:nowrap;color:#fff;padding:0 3px;box-sizing:border-box;
  cursor:pointer}
.call-bar.depth-0{background:#2b5fab}.call-bar.depth-1{background:#2f8f5b}
.call-bar.depth-2{background:#8a5a9e}.call-bar.depth-3{background:#b0742a}
.call-bar.depth-4{background:#666}
.subcall-bar{background:#e0a43a;color:#222}
.bar.queued{background-image:linear-gradient(90deg,rgba(255,255,255,.7) var(--queued),transparent var(--queued))}
.bar.error{background:#c0392b;color:#fff}
.bar.selected{outline:2px solid #000}
details{margin:2px 0 2px 14px}
details>summary{cursor:pointer}
details.call>summary{font-weight:600}
details.call.highlight>summary{background:#ffef9e}
.error>summary,pre.error{color:#b00}
pre{background:#f4f4f4;padding:6px;margin:4px 0;white-space:pre-wrap;word-break:break-word;
  max-height:320px;overflow:auto;font-size:12px}
pre.code{background:#eef3fb}
.subcalls{margin:4px 0;padding-left:18px}
.subcall .prompt{color:#666;font-size:12px;white-space:pre-wrap}
.answer{color:#17692f;margin:4px 0 4px 14px}
.field{color:#555;margin-left:14px;font-size:12px}
.toolbar button{margin-right:6px}
"""

# The script reads nothing from the run: it only opens and closes <details> elements.
_JS = """
(function () {
  function openUp(el) {
    for (var node = el; node; node = node.parentElement) {
      if (node.tagName === 'DETAILS') node.open = true;
    }
  }
  document.querySelectorAll('.bar[data-call]').forEach(function (bar) {
    bar.addEventListener('click', function () {
      document.querySelectorAll('.highlight').forEach(function (el) {
        el.classList.remove('highlight');
      });
      document.querySelectorAll('.bar.selected').forEach(function (el) {
        el.classList.remove('selected');
      });
      bar.classList.add('selected');
      var call = document.getElementById('call-' + bar.getAttribute('data-call'));
      if (!call) return;
      openUp(call);
      call.classList.add('highlight');
      call.scrollIntoView({block: 'start'});
    });
  });
  function setAll(open) {
    document.querySelectorAll('#tree details').forEach(function (d) { d.open = open; });
  }
  document.getElementById('expand-all').addEventListener('click', function () { setAll(true); });
  document.getElementById('collapse-all').addEventListener('click', function () { setAll(false); });
  document.body.setAttribute('data-ready', 'true');
})();
"""
