"""The model-call cache: keys, the SQLite store, bad directories, concurrent writers, and a job
run twice end to end (the second run makes no request to the model server)."""

from __future__ import annotations

import multiprocessing
import sqlite3

import pytest

from rlm_ray import RLM, ConfigError
from rlm_ray.models.call_cache import DB_NAME, CallCache, cache_key, check_cache_dir
from rlm_ray.testing import by_marker, code, turns
from rlm_ray.types import LLMReply

MESSAGES = [{"role": "user", "content": "hello"}]


def test_the_key_covers_model_messages_and_sampling_params_only():
    base = cache_key("openai/m", MESSAGES, {"temperature": 0, "stop": ["x"]})
    assert base == cache_key("openai/m", MESSAGES, {"stop": ["x"], "temperature": 0})
    # secrets, addresses, headers and timeouts cannot change the reply: same key
    same = {"temperature": 0, "stop": ["x"], "timeout": 3, "extra_headers": {"Authorization": "k"}}
    assert cache_key("openai/m", MESSAGES, same) == base
    # anything that can change the reply: another key
    others = [
        cache_key("openai/other", MESSAGES, {"temperature": 0, "stop": ["x"]}),
        cache_key(
            "openai/m", [{"role": "user", "content": "hello!"}], {"temperature": 0, "stop": ["x"]}
        ),
        cache_key("openai/m", MESSAGES, {"temperature": 0.5, "stop": ["x"]}),
        cache_key("openai/m", MESSAGES, {"temperature": 0, "stop": ["y"]}),
        cache_key("openai/m", MESSAGES, {"temperature": 0, "stop": ["x"], "max_tokens": 9}),
        cache_key("openai/m", MESSAGES, {"temperature": 0, "stop": ["x"], "seed": 1}),
    ]
    assert len({base, *others}) == 1 + len(others)


def test_a_hit_replays_text_and_tokens_at_no_cost(tmp_path):
    cache = CallCache(str(tmp_path))
    key = cache_key("openai/m", MESSAGES, {})
    assert cache.get(key) is None
    cache.put(key, LLMReply("hi", "openai/m", input_tokens=7, output_tokens=2, cost_usd=0.01))
    hit = cache.get(key)
    assert hit == LLMReply(
        "hi", "openai/m", input_tokens=7, output_tokens=2, cost_usd=0.0, attempts=0, cached=True
    )
    cache.close()
    reopened = CallCache(str(tmp_path))  # it is on disk
    assert reopened.get(key) == hit and len(reopened) == 1
    reopened.close()


def test_check_cache_dir_creates_it_and_makes_it_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert check_cache_dir("sub/cache") == str(tmp_path / "sub" / "cache")
    assert (tmp_path / "sub" / "cache" / DB_NAME).is_file()


def _foreign_db(path):
    db = sqlite3.connect(path / DB_NAME)
    db.execute("PRAGMA user_version = 7")
    db.commit()
    db.close()


def _foreign_table(path):
    db = sqlite3.connect(path / DB_NAME)
    db.execute("CREATE TABLE calls (id INTEGER)")
    db.commit()
    db.close()


@pytest.mark.parametrize(
    "make_bad, message",
    [
        (lambda p: (p / DB_NAME).write_bytes(b"this is not a database" * 100), "not a database"),
        (lambda p: (p / "file").write_text("x"), "cannot hold the call cache"),
        (_foreign_db, "schema version 7"),
        (_foreign_table, "no such column"),
    ],
    ids=["corrupt-file", "path-is-a-file", "other-schema-version", "foreign-table"],
)
def test_an_unusable_cache_dir_is_a_config_error_at_construction(tmp_path, make_bad, message):
    make_bad(tmp_path)
    target = tmp_path / "file" if (tmp_path / "file").exists() else tmp_path
    with pytest.raises(ConfigError, match=message) as info:
        RLM("openai/m", api_base="http://127.0.0.1:9/v1", cache_dir=target)
    assert "`cache_dir`" in str(info.value)


def test_cache_dir_type_is_checked():
    with pytest.raises(ConfigError, match="`cache_dir` must be a directory path"):
        RLM("openai/m", cache_dir=42)


def _writer(directory: str, worker: int, count: int) -> None:
    cache = CallCache(directory)
    for i in range(count):
        key = cache_key("openai/m", [{"role": "user", "content": f"q{i}"}], {"w": worker % 2})
        cache.put(key, LLMReply(f"{worker % 2}:{i}", "openai/m", input_tokens=i))
        assert cache.get(key) is not None
    cache.close()


def test_concurrent_writers_in_several_processes(tmp_path):
    # Four processes, two by two writing the same keys, all at once, into one directory.
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w, 150)) for w in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
    assert [proc.exitcode for proc in procs] == [0, 0, 0, 0]
    cache = CallCache(str(tmp_path))
    assert len(cache) == 300
    for w in (0, 1):
        for i in (0, 77, 149):
            key = cache_key("openai/m", [{"role": "user", "content": f"q{i}"}], {"w": w})
            assert cache.get(key).text == f"{w}:{i}"  # type: ignore[union-attr]
    cache.close()


def job_script():
    fan = code("rs = [llm_query(f'LEAF {i}') for i in range(6)]\nprint(sum(int(r) for r in rs))")
    return by_marker(
        {"LEAF": lambda r: str(len(r.first_user))},  # a pure function of the prompt
        default=turns(
            fan, lambda r: "FINAL(" + r.last_user.split("block 1:\n")[1].split()[0] + ")"
        ),
    )


@pytest.mark.ray
def test_a_rerun_makes_no_model_calls(make_rlm, model_server, tmp_path):
    model_server.reply = job_script()
    first = make_rlm(cache_dir=tmp_path, llm_kwargs={"temperature": 0}).completion("q", "ctx")
    assert first.answer == "36" and model_server.request_count == first.usage.calls == 8
    assert first.usage.cached_calls == 0

    model_server.reset_stats()
    second = make_rlm(cache_dir=tmp_path, llm_kwargs={"temperature": 0}).completion("q", "ctx")
    assert model_server.request_count == 0
    assert second.answer == first.answer
    assert second.usage.calls == second.usage.cached_calls == 8
    assert (second.usage.input_tokens, second.usage.output_tokens) == (
        first.usage.input_tokens,
        first.usage.output_tokens,
    )
    assert second.usage.cost_usd == 0.0
    assert second.usage.by_model["openai/scripted"].cached_calls == 8

    # Other sampling parameters for the root: its turns miss, the leaves (sub_llm_kwargs) hit.
    model_server.reset_stats()
    third = make_rlm(cache_dir=tmp_path, llm_kwargs={"temperature": 0.5}).completion("q", "ctx")
    assert third.answer == first.answer
    assert model_server.request_count == 2 and third.usage.cached_calls == 6
    # Without the cache every call is made again.
    model_server.reset_stats()
    make_rlm(llm_kwargs={"temperature": 0}).completion("q", "ctx")
    assert model_server.request_count == 8
