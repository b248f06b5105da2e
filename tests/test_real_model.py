"""RLM tasks with the real local model (Qwen2.5-Coder-1.5B, temperature 0, one server slot).

Marker `real_model`: excluded from the default run; `.ci/run` installs ``.[local]`` and runs
``pytest -m real_model`` after the main suite. Each task was kept only after three identical
passes (docs/local_model.md). The tests check the answer and the mechanics: code ran, sub-calls
were made where the task needs them, a final answer was reached, and no server outlived its run.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.real_model, pytest.mark.ray]

COMPLAINTS = [
    "My order arrived broken and nobody answers my emails.",
    "I was charged twice for the same ticket and I am furious.",
    "The delivery is three weeks late and support keeps ignoring me.",
    "The jacket fell apart after one wash, this is unacceptable.",
    "Your app deleted all my saved notes and I want a refund.",
]
OTHERS = [  # praise and questions: the sub-prompt must tell a question from a complaint
    "Could you tell me your opening hours on Sunday?",
    "Do you ship to Canada?",
    "Thanks, the delivery was quick and the product works great.",
    "I love the new colours in the spring collection.",
    "The staff at the Lyon store were very friendly and helpful.",
    "Great service, I will order again.",
    "The coat fits perfectly, thank you so much!",
    "Wonderful food and a lovely evening, we will be back.",
    "Fast shipping and excellent quality, very happy.",
]


def haystack(chars: int, needle: str, seed: int = 7) -> str:
    rng = random.Random(seed)
    words = (
        "the river town market harbor spring winter council bridge mill farmer lantern road "
        "season festival baker school"
    ).split()
    sentences = []
    while sum(len(s) + 1 for s in sentences) < chars:
        sentences.append(" ".join(rng.choice(words) for _ in range(12)).capitalize() + ".")
    sentences.insert(len(sentences) // 2, needle)
    return " ".join(sentences)


def messages() -> list[str]:
    items = COMPLAINTS + OTHERS
    random.Random(3).shuffle(items)
    return items


@pytest.fixture(scope="module")
def local_rlm(ray_session):
    from rlm_ray import RLM

    return RLM("local", max_iterations=5, max_time_s=600, local_server_slots=1)


def show(result) -> None:
    """The transcript, for pytest's report (-rP): three passes must print the same."""
    for it in result.trace.iterations:
        print(f"--- turn {it.index}\n{it.response}")
    print(f"=== answer {result.answer!r}")


def code_cells(result):
    return [cell for it in result.trace.iterations for cell in it.cells]


def test_needle_in_a_long_context(local_rlm):
    context = haystack(10_000, "The secret code for the north gate is 58213.")
    result = local_rlm.completion("What is the secret code for the north gate?", context)
    show(result)
    assert result.answer.strip() == "58213"
    cells = code_cells(result)
    assert cells and all(cell.error is None for cell in cells)
    assert any("58213" in cell.output for cell in cells)  # found by code, not guessed
    assert result.trace.finished_by in ("FINAL", "FINAL_VAR")


def test_a_count_fans_out_over_the_records(local_rlm):
    # The query defines its labels, as the quality benchmark's do: without the meanings the
    # 1.5B model grepped for the word "complaint" (2 of 2 runs, docs/prompts.md).
    query = (
        "How many messages are complaints? Each message is a complaint (the writer is unhappy "
        "about a problem) or other (praise, thanks, a question)."
    )
    result = local_rlm.completion(query, messages())
    show(result)
    subcalls = [sub for cell in code_cells(result) for sub in cell.subcalls]
    assert subcalls  # llm_classify asks the distinct messages, one a call for a local model
    assert all(sub.error is None for sub in subcalls)
    assert result.usage.calls == len(result.trace.iterations) + len(subcalls)
    assert result.trace.finished_by in ("FINAL", "FINAL_VAR")
    # The count comes from the 1.5B sub-model's labels, one message a call: 12 to 13 of these
    # 14 right when asked straight (docs/benchmarks.md, "One item a call"), so one "other"
    # message taken for a complaint is within what the model does; a grep, a lost batch or a
    # mis-parsed label is not.
    count = int(result.answer.strip())
    assert abs(count - len(COMPLAINTS)) <= 1, count
    # Issue 11: the run's program on new data of the same shape (every message twice: the
    # operator asks identical records once, so the sub-model sees the very same prompts) gives
    # the answer a run on that data would give, with no root-model turn.
    print(result.program.describe())
    replayed = result.program.run(messages() * 2)
    print(f"=== replayed {replayed.answer!r}")
    assert replayed.answer.strip() == str(2 * count)
    assert all(it.input_tokens == 0 for it in replayed.trace.iterations)
    replay_subcalls = [s for it in replayed.trace.iterations for c in it.cells for s in c.subcalls]
    assert replayed.usage.calls == len(replay_subcalls)


def test_no_server_outlives_its_run(local_rlm):
    before = set(_server_pids())
    local_rlm.completion("What is the secret code?", "The secret code is 11.")
    assert set(_server_pids()) - before == set()


def test_a_server_exits_when_its_owner_dies(tmp_path: Path):
    owner = (
        "import os\n"
        "from rlm_ray.local.local_model import LOCAL_MODELS, LocalServer\n"
        "server = LocalServer(LOCAL_MODELS['local']).start()\n"
        "print(server.pid, flush=True)\n"
        "os._exit(0)\n"  # no cleanup runs: like a killed Ray actor
    )
    out = subprocess.run(
        [sys.executable, "-c", owner], capture_output=True, text=True, timeout=300, check=True
    )
    pid = int(out.stdout.strip())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.2)
    assert not _alive(pid)


def test_a_saved_prompt_prefix_is_read_by_the_next_server_from_its_file(tmp_path: Path):
    """prompt_cache.py with llama.cpp over HTTP: a server reads a prompt's fixed start and saves
    its state; a new server restores it and reads only what follows; a file it cannot read is
    replaced by a good one; a directory it cannot create saves nothing and fails nothing."""
    from rlm_ray.local.local_model import LOCAL_MODELS, LocalServer

    spec = LOCAL_MODELS["local"]
    prefix = [{"role": "system", "content": " ".join(f"Rule {i}: be brief." for i in range(80))}]
    with LocalServer(spec, prompt_cache=tmp_path) as first:
        assert first.warm_prefix(prefix) == "saved"
    [saved] = tmp_path.glob("prefix-*.bin")
    with LocalServer(spec, prompt_cache=tmp_path) as second:
        assert second.warm_prefix(prefix) == "restored"
        timings = _chat(second, [*prefix, {"role": "user", "content": "Say hi."}])["timings"]
    assert timings["cache_n"] >= 400 and timings["prompt_n"] < 40, timings  # the prefix: ~560
    saved.write_bytes(b"not a slot state")
    with LocalServer(spec, prompt_cache=tmp_path) as third:
        assert third.warm_prefix(prefix) == "saved"  # the restore failed: read and saved anew
    assert saved.stat().st_size > 1_000_000 and len(list(tmp_path.glob("prefix-*"))) == 1
    (tmp_path / "a-file").write_text("")
    with LocalServer(spec, prompt_cache=tmp_path / "a-file" / "cache") as unwritable:
        assert unwritable.warm_prefix(prefix).startswith("not saved: cannot create")


def test_the_server_holds_a_plan_turn_to_the_plan_schema():
    """llama.cpp's server enforces `response_format` (issue 27): asked for anything but JSON, the
    1.5B model still answers a reply the plan schema allows, with the records' own field names."""
    from rlm_ray.local.local_model import LOCAL_MODELS, LocalServer
    from rlm_ray.plans import shapes
    from rlm_ray.plans.records import record_lists
    from rlm_ray.plans.schema import response_format

    lists = record_lists("2026-03-01 | user ana | my parcel is late\n2026-03-02 | user bo | hi")
    ask = [{"role": "user", "content": "Write a haiku about parcels, no JSON please."}]
    with LocalServer(LOCAL_MODELS["local"]) as server:
        body = _chat(server, ask, max_tokens=300, response_format=response_format(lists))
    reply = json.loads(body["choices"][0]["message"]["content"])
    if reply["shape"] != shapes.CODE:  # a shape: its slots, in order, fields the records have
        assert list(reply) == ["shape", *(name for name, _ in shapes.BY_NAME[reply["shape"]].slots)]
        fields = (shapes.FIELD, shapes.TEXT_FIELD, shapes.VALUE_FIELD)
        for name, kind in shapes.BY_NAME[reply["shape"]].slots:
            assert kind not in fields or reply[name] in ("date", "user", "text")
            assert kind != shapes.TESTS or reply[name] == {}  # the query names no value


def _chat(server, messages: list[dict], max_tokens: int = 1, **extra) -> dict:
    import urllib.request

    body = {"model": server.spec.served_name, "messages": messages, "max_tokens": max_tokens}
    body |= extra
    request = urllib.request.Request(
        f"{server.api_base}/chat/completions",
        json.dumps(body).encode(),
        {"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _server_pids() -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if b"rlm_ray.local.local_model serve" in cmdline and _alive(int(proc.name)):
                pids.append(int(proc.name))
    return pids
