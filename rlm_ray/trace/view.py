"""`rlm-ray trace FILE`: the call tree of a trace file in the terminal, drawn with rich.

Every text from the run (code, outputs, errors, prompts) goes in as `rich.text.Text`, never as
markup, so a `[bold]` in model code prints as it is, and with its control characters written
as escapes (`terminal.printable`: rich drops BEL and BS but passes ESC, so an escape sequence in
an answer would reach the terminal).
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.text import Text
from rich.tree import Tree

from rlm_ray.safety.terminal import printable
from rlm_ray.trace import summary as ts
from rlm_ray.trace.file import trees

_CODE_LINES = 12
_TEXT_CHARS = 400


def print_trace(records: list[dict[str, Any]], console: Console | None = None) -> None:
    """Each call tree of the file (a chat session's file holds one per question) and its
    summary line."""
    console = console or Console()
    calls = ts.by_id(records)
    for tree_records in trees(records):
        root = tree_records[0]
        tree = Tree(_text(ts.call_label(root), style="bold"))
        tree.add(_text("query: " + _clip(root.get("query") or "")))
        _add_call_body(tree, root, calls)
        console.print(tree)
        console.print(_text(ts.summary(tree_records)))


def _add_call_body(tree: Tree, call: dict[str, Any], calls: dict[str, dict[str, Any]]) -> None:
    if call.get("error"):
        tree.add(_text("error: " + _clip(call["error"]), style="red"))
    for iteration in call["iterations"]:
        branch = tree.add(_text(ts.iteration_label(iteration)))
        for number, cell in enumerate(iteration["cells"], 1):
            _add_cell(branch, number, cell, calls)
    if call.get("answer") is not None:
        tree.add(_text("answer: " + _clip(call["answer"]), style="green"))


def _add_cell(
    branch: Tree, number: int, cell: dict[str, Any], calls: dict[str, dict[str, Any]]
) -> None:
    style = "red" if cell.get("error") else ""
    node = branch.add(_text(ts.cell_label(number, cell), style=style))
    node.add(_text(_lines(cell["code"]), style="cyan"))
    if cell["output"].strip():
        node.add(_text("output: " + _clip(cell["output"]), style="dim"))
    if cell.get("error"):
        node.add(_text("error: " + _clip(cell["error"]), style="red"))
    for cascade in cell.get("cascades") or ():  # approximate operators (docs/cascades.md)
        node.add(_text(_clip(cascade["summary"]), style="magenta"))
    for sub in cell["subcalls"]:
        child = calls.get(sub.get("child_id") or "")
        style = "red" if sub.get("error") else "yellow"
        leaf = node.add(_text(ts.subcall_label(sub), style=style))
        if sub.get("error") and child is None:
            leaf.add(_text("error: " + _clip(sub["error"]), style="red"))
        if child is not None:
            below = leaf.add(_text(ts.call_label(child), style="bold"))
            _add_call_body(below, child, calls)
        elif sub.get("kind") == "tool":
            leaf.add(_text("arguments: " + _clip(sub.get("arguments") or ""), style="dim"))
            if sub.get("result_preview"):
                leaf.add(_text("result: " + _clip(sub["result_preview"]), style="dim"))
        else:
            leaf.add(_text("prompt: " + _clip(sub.get("prompt_preview") or ""), style="dim"))
            if sub.get("result_preview"):
                leaf.add(_text("answer: " + _clip(sub["result_preview"]), style="dim"))


def _lines(code: str) -> str:
    lines = code.splitlines()
    if len(lines) > _CODE_LINES:
        lines = lines[:_CODE_LINES] + [f"... ({len(lines) - _CODE_LINES} more lines)"]
    return "\n".join(lines)


def _clip(text: str) -> str:
    text = text.strip()
    return text if len(text) <= _TEXT_CHARS else text[:_TEXT_CHARS] + " ..."


def _text(text: str, style: str = "") -> Text:
    """A line of the tree: text from the trace file, made harmless for the terminal."""
    return Text(printable(text), style=style)
