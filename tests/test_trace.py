"""Trace files from real runs: the call tree with where and when everything ran, the same records
in JSONL and Parquet, no secret in any of them, and the terminal and HTML views of them.

One scripted run (module-scoped: ~5 s) covers the cases: six leaf calls in parallel, a child RLM
with its own REPL and leaf call, a leaf call the provider refuses while echoing the API key, a
cell that raises, and model code printing HTML.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import zlib
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers import run_cli

from rlm_ray.cli import main
from rlm_ray.testing import Reply, by_marker, code, turns
from rlm_ray.trace import summary as ts
from rlm_ray.trace.file import read_trace, trace_records, write_trace
from rlm_ray.trace.html import render_html, write_html
from rlm_ray.trace.parquet import CELL, ITERATION, SCHEMA, SUBCALL

API_KEY = "sk-TRACE-SECRET-4f9c2a7e"  # must never appear in a trace
HEADER_TOKEN = "hdr-TRACE-TOKEN-77b1d0"  # a secret litellm argument, pasted into the context too
FANOUT = 6
LATENCY = 0.3
INJECT = "<rlmx-inject>bold</rlmx-inject>"

ROOT_CODE = f"""
rs = [llm_query(f'LEAF {{i}}') for i in range(6)]
kid = recursive_llm('KID question', 'kid context')
try:
    print('got', str(llm_query('DENIED please')))
except SubCallError as e:
    print('denied:', e)
print('{INJECT}', context)
print(sorted(rs), kid)
"""
SCRIPT = by_marker(
    {
        "GRANDLEAF": "g",
        "LEAF": lambda r: r.first_user.split()[-1],
        "DENIED": Reply(status=401, content=f"Incorrect API key provided: {API_KEY}."),
        "KID": turns(code("FINAL('kid:' + llm_query('GRANDLEAF x'))")),
    },
    default=turns(code(ROOT_CODE), code("x = 1 / 0"), "FINAL(done)"),
)


@pytest.fixture(scope="module")
def run(ray_session, _server):
    from rlm_ray import RLM

    _server.reply, _server.latency_s = SCRIPT, LATENCY
    _server.reset_stats()
    try:
        rlm = RLM(
            "openai/gpt-4o-mini",  # priced in litellm's map: the trace carries real costs
            api_base=_server.url,
            api_key=API_KEY,
            max_depth=2,
            max_retries=0,
            llm_kwargs={"extra_headers": {"X-Trace-Token": HEADER_TOKEN}},
        )
        result = rlm.completion("ROOTQ what is there?", f"secret header {HEADER_TOKEN} here")
        requests = _server.request_count
    finally:
        _server.latency_s = 0.0
    return result, requests


@pytest.fixture(scope="module")
def records(run):
    return list(trace_records(run[0].trace))


@pytest.fixture(scope="module")
def files(run, tmp_path_factory):
    out = tmp_path_factory.mktemp("trace")
    jsonl, parquet = out / "run.jsonl", out / "run.parquet"
    assert write_trace(run[0].trace, jsonl) == 2
    assert write_trace(run[0].trace, parquet) == 2
    html = out / "run.html"
    write_html(read_trace(parquet), html)
    return jsonl, parquet, html


pytestmark = pytest.mark.ray


def test_the_tree_has_every_level_with_times_places_and_usage(run, records):
    result, requests = run
    root, kid = records
    assert result.answer == "done"
    assert root["parent_id"] is None and kid["parent_id"] == root["call_id"] and kid["depth"] == 1
    first = root["iterations"][0]["cells"][0]
    leaves = [s for s in first["subcalls"] if s["kind"] == "llm" and not s["error"]]
    rlm_sub = next(s for s in first["subcalls"] if s["kind"] == "rlm")
    denied = next(s for s in first["subcalls"] if s["error"])
    assert len(leaves) == FANOUT and rlm_sub["child_id"] == kid["call_id"]
    assert "denied:" in first["output"] and "Incorrect API key provided: ***" in first["output"]
    assert "ZeroDivisionError" in root["iterations"][1]["cells"][0]["error"]
    # What each sub-call gave the code: the model's answer, the child's, nothing for a failure.
    assert sorted(s["result_preview"] for s in leaves) == [str(i) for i in range(FANOUT)]
    assert rlm_sub["result_preview"] == "kid:g" and denied["result_preview"] == ""
    # Where: REPL workers for calls, gateways (other processes) for leaf calls.
    for call in records:
        assert call["node_id"] and call["actor_id"] and call["pid"] > 0
    for sub in leaves + [rlm_sub]:
        assert sub["node_id"] == root["node_id"] and sub["actor_id"] and sub["pid"] > 0
    assert {s["pid"] for s in leaves}.isdisjoint({root["pid"]})
    assert rlm_sub["pid"] == kid["pid"] and rlm_sub["actor_id"] == kid["actor_id"]
    assert denied["pid"] == 0  # it never got a reply: no gateway to name
    # When: every level starts before it ends, inside its parent.
    for call in records:
        assert call["started_s"] <= call["ended_s"]
        for it in call["iterations"]:
            assert call["started_s"] <= it["started_s"] <= it["ended_s"] <= call["ended_s"]
            for cell in it["cells"]:
                assert it["started_s"] <= cell["started_s"] <= cell["ended_s"] <= it["ended_s"]
                for sub in cell["subcalls"]:
                    assert cell["started_s"] <= sub["started_s"] <= sub["ended_s"]
                    assert sub["duration_s"] == pytest.approx(sub["ended_s"] - sub["started_s"])
    bad = [
        s for s in leaves + [rlm_sub] if not s["started_s"] <= s["run_started_s"] <= s["ended_s"]
    ]
    assert not bad, [(s["kind"], s["started_s"], s["run_started_s"], s["ended_s"]) for s in bad]
    # The leaves ran in parallel (each takes LATENCY at the server; all start at once).
    assert peak([(s["run_started_s"], s["ended_s"]) for s in leaves]) >= 2
    # Usage: per iteration and sub-call, and the tree's total on each call.
    assert root["total_calls"] == requests - 1 == 3 + FANOUT + 2  # all but the refused call
    assert root["total_cost_usd"] > 0 and kid["total_calls"] == 2
    assert root["total_cost_usd"] == pytest.approx(result.usage.cost_usd)
    assert all(it["cost_usd"] > 0 and it["input_tokens"] > 0 for it in root["iterations"])
    assert all(s["cost_usd"] > 0 and s["output_tokens"] > 0 for s in leaves)
    assert rlm_sub["input_tokens"] == kid["total_input_tokens"]


def peak(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    running = best = 0
    for _, step in events:
        running += step
        best = max(best, running)
    return best


def test_jsonl_and_parquet_hold_the_same_records(records, files):
    jsonl, parquet, _ = files
    assert read_trace(jsonl) == records
    assert read_trace(parquet) == records


def test_parquet_schema_matches_the_records(records):
    def names(struct_type):
        return {struct_type.field(i).name for i in range(struct_type.num_fields)}

    root = records[0]
    iteration = root["iterations"][0]
    cell = iteration["cells"][0]
    assert set(SCHEMA.names) == set(root)
    assert names(ITERATION) == set(iteration)
    assert names(CELL) == set(cell)
    assert names(SUBCALL) == set(cell["subcalls"][0])


def test_no_secret_reaches_any_trace_file(run, files):
    jsonl, parquet, html = files
    decoded = json.dumps(pq.read_table(parquet).to_pylist())
    texts = [jsonl.read_text(), decoded, html.read_text(), str(run[0].trace)]
    for text in texts:
        assert API_KEY not in text and HEADER_TOKEN not in text
        assert "***" in text  # the echoed key and the pasted token were there, masked
    for data in (jsonl.read_bytes(), parquet.read_bytes(), html.read_bytes()):
        assert API_KEY.encode() not in data and HEADER_TOKEN.encode() not in data


def test_an_error_from_the_provider_is_masked_when_the_run_fails(ray_session, model_server):
    from rlm_ray import RLM
    from rlm_ray.errors import LLMError

    model_server.reply = turns(Reply(status=401, content=f"Incorrect API key provided: {API_KEY}"))
    rlm = RLM("openai/scripted", api_base=model_server.url, api_key=API_KEY, max_retries=0)
    with pytest.raises(LLMError) as caught:
        rlm.completion("q", "ctx")
    assert API_KEY not in str(caught.value) and "Incorrect API key provided: ***" in str(
        caught.value
    )


def test_the_timeline_puts_parallel_calls_on_separate_rows(records):
    line = ts.timeline(records)
    bars = line.bars
    assert Counter(b.kind for b in bars) == {"call": 2, "subcall": FANOUT + 2}
    assert line.peak_parallel_subcalls >= FANOUT
    gateway_lanes = [lane for n in line.nodes for lane in n.lanes if "gateway" in lane.name]
    leaves = [b for lane in gateway_lanes for b in lane.bars if b.label.startswith("d1 llm")]
    assert len(leaves) == FANOUT
    for lane in line.nodes[0].lanes:  # bars that share a row never overlap
        for a in lane.bars:
            for b in lane.bars:
                if a is not b and a.row == b.row:
                    assert a.end <= b.start or b.end <= a.start


def test_cli_run_writes_parquet_and_trace_shows_it(model_server, ray_session, tmp_path, capsys):
    model_server.reply = SCRIPT
    trace = tmp_path / "cli.parquet"
    context = tmp_path / "ctx.txt"
    context.write_text("some context")
    # `run` in this process (its Ray is up: seconds, not a new driver); `trace` as the command.
    code = main(
        [
            *("run", "--model", "openai/scripted", "--api-base", model_server.url),
            *("--api-key", API_KEY, "--context", str(context), "--query", "ROOTQ q"),
            *("--max-depth", "2", "--trace", str(trace)),
        ]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    assert out.out == "done\n" and "wrote 2 calls" in out.err
    shown = run_cli("trace", str(trace))
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert "root call" in text and "child call" in text and "recursive_llm" in text
    assert text.count("llm_query") >= FANOUT + 2 and "ZeroDivisionError" in text
    assert INJECT in text and API_KEY not in text
    assert "answer: g" in text  # the grandchild leaf's answer, under its prompt
    assert f"2 RLM call(s), {FANOUT + 3} sub-call(s)" in text
    page = tmp_path / "page.html"
    made = run_cli("trace", str(trace), "--html", str(page))
    assert made.returncode == 0, made.stderr
    assert made.stdout == "" and page.read_text().startswith("<!DOCTYPE html>")


def test_a_failed_run_still_writes_its_trace(model_server, ray_session, tmp_path, capsys):
    model_server.reply = turns(
        code("print('first turn ran')"),
        Reply(status=401, content=f"Incorrect API key provided: {API_KEY}"),
    )
    trace = tmp_path / "failed.jsonl"
    context = tmp_path / "ctx.txt"
    context.write_text("some context")
    code_ = main(
        [
            *("run", "--model", "openai/scripted", "--api-base", model_server.url),
            *("--api-key", API_KEY, "--context", str(context), "--query", "q"),
            *("--trace", str(trace)),
        ]
    )
    err = capsys.readouterr().err
    assert code_ == 1 and "wrote 1 calls" in err and "AuthenticationError" in err
    (root,) = read_trace(trace)
    assert root["iterations"][0]["cells"][0]["output"] == "first turn ran\n"
    assert "LLMError" in root["error"] and "Incorrect API key provided: ***" in root["error"]
    assert API_KEY not in trace.read_text() and API_KEY not in err


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("missing.jsonl", None, "no such file"),
        ("bad.jsonl", b'{"call_id": "a"\n', "line 1 is not JSON"),
        ("other.jsonl", b'{"hello": 1}\n', "no valid `call_id`; is this an rlm-ray trace?"),
        ("empty.jsonl", b"", "no records"),
        ("bad.parquet", b"PAR1 not really parquet", "not a readable Parquet file"),
        ("trace.txt", b"{}", "unknown format '.txt'"),
    ],
)
def test_bad_trace_files_give_one_line_errors(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    out = run_cli("trace", str(path))
    assert out.returncode == 1 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], out.stderr


def test_orphan_records_are_refused(tmp_path, records):
    path = tmp_path / "orphan.jsonl"
    path.write_text(json.dumps(records[1]) + "\n")  # a child without its parent
    with pytest.raises(Exception, match="does not come before it"):
        read_trace(path)


# -- the page in a real browser ------------------------------------------------------------------
def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail("chromium is not installed; .ci/run installs Debian's chromium package")
    pytest.skip("chromium is not installed (apt-get install chromium); CI runs this test")


def browse(page: Path, *args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            chromium(),
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=5000",
            *args,
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


class Elements(HTMLParser):
    """Every element of a DOM dump: (tag, attributes)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, {k: v or "" for k, v in attrs}))

    def bars_by_lane(self) -> dict[int, list[dict[str, float]]]:
        """The timeline's bars (left %, width %, top px), by the lane they are in."""
        lanes: dict[int, list[dict[str, float]]] = {}
        lane = -1
        for number, (tag, attrs) in enumerate(self.found):
            classes = attrs.get("class", "").split()
            if "lane" in classes:
                lane = number
            elif "bar" in classes and tag == "div":
                style = dict(p.split(":") for p in attrs["style"].split(";") if p)
                lanes.setdefault(lane, []).append(
                    {k: float(style[k].rstrip("%px")) for k in ("left", "width", "top")}
                )
        return lanes

    def with_class(self, name: str, tag: str | None = None) -> list[dict[str, str]]:
        return [
            a
            for t, a in self.found
            if name in a.get("class", "").split() and (tag is None or t == tag)
        ]


def test_the_page_renders_in_chromium(records, tmp_path):
    # Pretend the child ran on a second node: the page must then show two node groups.
    two_nodes = json.loads(json.dumps(records))
    two_nodes[1]["node_id"] = "b" * 56
    page = tmp_path / "page.html"
    write_html(two_nodes, page)
    out = browse(page, "--dump-dom", tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    dom = Elements()
    dom.feed(out.stdout)
    body = next(a for t, a in dom.found if t == "body")
    assert body.get("data-ready") == "true"  # the page's script ran without an error
    # Two nodes, and a group for the refused call, which no gateway answered.
    assert [a["data-node"] for a in dom.with_class("node")] == sorted(
        [records[0]["node_id"], "b" * 56]
    ) + [""]
    call_bars = dom.with_class("call-bar", "div")
    assert sorted(a["data-call"] for a in call_bars) == sorted(r["call_id"] for r in records)
    leaf_subcalls = [s for r in records for s in ts.subcalls_of(r) if not s["child_id"]]
    assert len(dom.with_class("subcall-bar", "div")) == len(leaf_subcalls)
    # Bars that overlap in time sit on different rows of their lane: parallel calls show.
    overlapping = 0
    for bars in dom.bars_by_lane().values():
        for i, a in enumerate(bars):
            for b in bars[i + 1 :]:
                if a["left"] < b["left"] + b["width"] and b["left"] < a["left"] + a["width"]:
                    assert a["top"] != b["top"], (a, b)
                    overlapping += 1
    assert overlapping >= 1
    n_cells = sum(1 for r in records for _ in ts.cells_of(r))
    assert len(dom.with_class("call", "details")) == len(records)
    assert len(dom.with_class("cell", "details")) == n_cells
    assert "rlmx-inject" not in [t for t, _ in dom.found]  # model output stayed text
    assert "&lt;rlmx-inject&gt;bold&lt;/rlmx-inject&gt;" in out.stdout
    assert API_KEY not in out.stdout


def test_the_page_screenshot_shows_the_timeline(records, tmp_path):
    page = tmp_path / "page.html"
    page.write_text(render_html(records))
    shot = tmp_path / "shot.png"
    out = browse(page, f"--screenshot={shot}", "--window-size=900,700", tmp_path=tmp_path)
    assert out.returncode == 0 and shot.is_file(), out.stderr[-2000:]
    pixels = png_pixels(shot.read_bytes())
    # The depth-0 call bar's colour (#2b5fab) and the leaf bars' (#e0a43a) are on screen.
    assert pixels[(0x2B, 0x5F, 0xAB)] > 200
    assert pixels[(0xE0, 0xA4, 0x3A)] > 200


def png_pixels(data: bytes) -> Counter:
    """Colour counts of an 8-bit RGB/RGBA PNG (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        header, idat = (
            (body, idat) if kind == b"IHDR" else (header, idat + body * (kind == b"IDAT"))
        )
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and colour in (2, 6), (depth, colour)
    bpp = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(idat), width * bpp
    prev, counts = bytearray(stride), Counter()
    for y in range(height):
        line = raw[y * (stride + 1) : (y + 1) * (stride + 1)]
        row = _unfilter(line[0], bytearray(line[1:]), prev, bpp)
        counts.update(zip(row[0::bpp], row[1::bpp], row[2::bpp]))
        prev = row
    return counts


def _unfilter(kind: int, row: bytearray, prev: bytearray, bpp: int) -> bytearray:
    for i in range(len(row)):
        left = row[i - bpp] if i >= bpp else 0
        up, corner = prev[i], prev[i - bpp] if i >= bpp else 0
        if kind == 1:
            row[i] = (row[i] + left) & 0xFF
        elif kind == 2:
            row[i] = (row[i] + up) & 0xFF
        elif kind == 3:
            row[i] = (row[i] + (left + up) // 2) & 0xFF
        elif kind == 4:
            p = left + up - corner
            pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
            pred = left if pa <= pb and pa <= pc else up if pb <= pc else corner
            row[i] = (row[i] + pred) & 0xFF
    return row
