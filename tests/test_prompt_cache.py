"""prompt_cache.py without the real model: pruning, keys, and a server that cannot save slots.

The save and restore with llama.cpp itself run in tests/test_real_model.py
(`test_a_saved_prompt_prefix_is_read_by_the_next_server_from_its_file`).
"""

from __future__ import annotations

import os
from pathlib import Path

from rlm_ray.local import prompt_cache

PREFIX = [{"role": "system", "content": "You answer with code."}]


def test_pruning_keeps_the_most_recently_used_prefixes(tmp_path: Path):
    for age in range(6):
        file = tmp_path / f"prefix-{age}.bin"
        file.write_bytes(b"x")
        os.utime(file, (1_000_000 - age, 1_000_000 - age))  # prefix-0 the newest
    (tmp_path / "model.gguf").write_bytes(b"not a prefix")
    prompt_cache.prune(tmp_path, keep=4)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["model.gguf", *(f"prefix-{age}.bin" for age in range(4))]


def test_the_key_changes_with_the_model_the_build_the_slot_and_the_messages(tmp_path: Path):
    model = tmp_path / "m.gguf"
    model.write_bytes(b"weights")
    base = prompt_cache.key(model, "1.0", 16_384, PREFIX)
    assert base == prompt_cache.key(model, "1.0", 16_384, [dict(m) for m in PREFIX])
    other = [{"role": "system", "content": "You answer in prose."}]
    assert len({base, prompt_cache.key(model, "1.1", 16_384, PREFIX)}) == 2
    assert len({base, prompt_cache.key(model, "1.0", 8_192, PREFIX)}) == 2
    assert len({base, prompt_cache.key(model, "1.0", 16_384, other)}) == 2
    model.write_bytes(b"other weights")
    assert prompt_cache.key(model, "1.0", 16_384, PREFIX) != base


def test_a_server_without_slot_endpoints_saves_nothing_and_raises_nothing(
    model_server, tmp_path: Path
):
    """An OpenAI-compatible server that is not llama.cpp (here the scripted one, over HTTP):
    the prefix is read, the save is refused, nothing is left behind, and warm says why."""
    model_server.reply = "ok"
    url = model_server.url.removesuffix("/v1")
    outcome = prompt_cache.warm(url, "scripted", tmp_path, "k1", PREFIX, timeout_s=10)
    assert outcome.startswith("not saved: HTTP"), outcome
    assert [r.messages[0] for r in model_server.requests] == PREFIX  # it was asked to read it
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "prefix-k2.bin").write_bytes(b"a state this server cannot restore")
    outcome = prompt_cache.warm(url, "scripted", tmp_path, "k2", PREFIX, timeout_s=10)
    assert outcome.startswith("not saved: restore failed (HTTP"), outcome
    assert list(tmp_path.iterdir()) == []  # the unreadable file is gone


def test_no_server_at_all_is_reported_not_raised(tmp_path: Path):
    outcome = prompt_cache.warm("http://127.0.0.1:9", "x", tmp_path, "k", PREFIX, timeout_s=5)
    assert outcome.startswith("not saved: URLError"), outcome
