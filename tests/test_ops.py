"""Record operators: in the REPL of a call, and end to end over Ray and litellm over HTTP.

`llm_map` / `llm_filter` / `llm_classify` from model code in the REPL (packing, dedupe and splitting
in a call made in this process; corpus reads and budgets over Ray), and `rlm_ray.ops` from plain
Python over Ray. The scripted model (`testing.records`) answers each batch item by item, and
garbles batches larger than `garble_above`, so packing, splitting, dedupe, cache and budgets
show in the requests the server saw.
"""

from __future__ import annotations

import math
import warnings
from types import SimpleNamespace

import pyarrow as pa
import pytest
from helpers import local_completion

import rlm_ray
from rlm_ray import ops
from rlm_ray.operators.record_ops import MAX_BATCH_ITEMS
from rlm_ray.testing import code, records, turns

LABELS = ["BIRD", "FISH"]
ANIMALS = ["owl", "trout", "hawk", "salmon", "wren", "pike"]


def kind(task: str, item: str) -> str:
    """The scripted sub-model: knows birds from fish; answers in the operator's form."""
    bird = any(name in item for name in ("owl", "hawk", "wren"))
    if task.startswith("Labels"):
        return "bird" if bird else "Fish."  # sloppy case and punctuation: normalised
    if task.startswith("Condition"):
        return "Yes" if bird else "no"
    return item.split()[-1].upper()


def batches(model) -> list[str]:
    """The batch prompts `model` (the scripted server or a `FakeLLM`) was sent."""
    return [r.first_user for r in model.requests if "\n\nItems:\n" in r.first_user]


def sightings(n: int, distinct: int) -> list[str]:
    return [f"sighting {i % distinct}: a {ANIMALS[i % distinct % 6]}" for i in range(n)]


def script(root_code: str, garble_above=None):
    return records(kind, garble_above=garble_above, default=turns(code(root_code), "FINAL(unused)"))


def scripted(server, root_code: str, garble_above=None):
    server.reply = script(root_code, garble_above)


# -- in the REPL -----------------------------------------------------------------------------------


def test_repl_classify_packs_batches_and_asks_identical_records_once():
    context = sightings(200, 50)  # 50 distinct records
    reply = script(
        """
        kinds = llm_classify(context, ["BIRD", "FISH"])
        FINAL(f"{len(kinds)} {kinds.count('BIRD')} {sorted(set(kinds))}")
        """,
    )
    result, fake = local_completion(reply, "How many birds?", context)
    birds = sum(1 for r in context if kind("Labels", r) == "bird")
    assert result.answer == f"200 {birds} ['BIRD', 'FISH']"
    assert len(batches(fake)) == math.ceil(50 / MAX_BATCH_ITEMS)  # 2, not 200
    # the batches are sub-calls of the cell: in the trace, with their usage
    cell = result.trace.iterations[0].cells[0]
    assert len(cell.subcalls) == 2 and all(s.input_tokens > 0 for s in cell.subcalls)


def test_repl_filter_splits_garbled_batches_and_retries():
    context = "\n".join(sightings(20, 20))  # a str: its lines are the records
    reply = script(
        """
        birds = llm_filter("Is the animal a bird?", context)
        FINAL(len(birds))
        """,
        garble_above=5,
    )
    result, fake = local_completion(reply, "How many birds?", context)
    assert result.answer == str(
        sum(1 for r in context.splitlines() if "hawk" in r or "owl" in r or "wren" in r)
    )
    sizes = sorted(b.count("\n[") for b in batches(fake))
    assert sizes == [5, 5, 5, 5, 10, 10, 20]  # 20 -> 10 + 10 -> 4 x 5, which parse


@pytest.mark.ray
def test_repl_map_over_corpus_documents(make_rlm, model_server):
    table = pa.table({"text": [f"field note {i}: saw a {a}" for i, a in enumerate(ANIMALS)]})
    corpus = rlm_ray.load(table)
    scripted(
        model_server,
        """
        names = llm_map("Which animal? One word.", context)
        FINAL(",".join(names))
        """,
    )
    result = make_rlm().completion("Which animals?", corpus)
    assert result.answer == ",".join(a.upper() for a in ANIMALS)
    assert "[6] field note 5: saw a pike" in batches(model_server)[0]  # read by the gateway


@pytest.mark.ray
def test_repl_budget_stops_the_run(make_rlm, model_server):
    scripted(
        model_server,
        """
        kinds = llm_classify(context, ["BIRD", "FISH"])
        FINAL(len(kinds))
        """,
    )
    with pytest.raises(rlm_ray.LimitExceededError) as info:
        make_rlm(max_sub_calls=1).completion("q", sightings(100, 100))
    assert info.value.limit == "max_sub_calls"


# -- rlm_ray.ops from plain Python -----------------------------------------------------------------


def settings(server, **kw):
    return {"model": "openai/scripted", "api_base": server.url, "api_key": "sk-test", **kw}


@pytest.mark.ray
def test_ops_classify_filter_map(ray_session, model_server):
    model_server.reply = records(kind)
    items = sightings(30, 6)
    kinds = ops.classify(items, LABELS, **settings(model_server, max_batch_items=4))
    assert len(kinds) == 30 and set(kinds) == {"BIRD", "FISH"}
    assert kinds.usage.calls == math.ceil(6 / 4) == len(batches(model_server))
    assert kinds.usage.input_tokens > 0 and kinds.warnings == []
    kept = ops.filter("Is it a bird?", items, **settings(model_server))
    assert kept.values == [r for r in items if kind("Condition", r) == "Yes"]
    names = ops.map("Which animal?", "a owl\n\na trout\n", **settings(model_server))
    assert names.values == ["OWL", "TROUT"]


@pytest.mark.ray
def test_ops_one_item_a_call_over_http(ray_session, model_server):
    """The small models' mode (`max_batch_items=1`): one short prompt per distinct item, sent
    in parallel through the gateways, answers parsed bare."""
    model_server.reply = records(kind)
    items = sightings(12, 6)
    before = len(model_server.requests)
    kinds = ops.classify(items, LABELS, **settings(model_server, max_batch_items=1))
    assert kinds.values == ["BIRD" if kind("Labels", r) == "bird" else "FISH" for r in items]
    assert kinds.usage.calls == 6  # identical items asked once
    sent = [r.first_user for r in model_server.requests[before:]]
    assert all(p.count("Text: ") == 1 and p.endswith("\nLabel:") for p in sent)
    kept = ops.filter("Is it a bird?", items, **settings(model_server, max_batch_items=1))
    assert kept.values == [r for r in items if kind("Condition", r) == "Yes"]
    assert all(r.first_user.startswith("Item: ") for r in model_server.requests[-6:])


@pytest.mark.ray
def test_ops_classify_gives_unknown_for_answers_outside_the_labels(ray_session, model_server):
    model_server.reply = records(lambda task, item: "dolphin" if "pike" in item else "bird")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kinds = ops.classify(sightings(6, 6), LABELS, **settings(model_server))
    assert kinds.values == ["BIRD"] * 5 + ["unknown"]
    assert "no usable answer" in kinds.warnings[0] and caught


@pytest.mark.ray
def test_ops_cache_second_run_makes_no_model_calls(ray_session, model_server, tmp_path):
    model_server.reply = records(kind)
    args = settings(model_server, cache_dir=tmp_path / "cache", max_batch_items=5)
    first = ops.classify(sightings(20, 20), LABELS, **args)
    calls = len(model_server.requests)
    second = ops.classify(sightings(20, 20), LABELS, **args)
    assert calls == 4 and len(model_server.requests) == calls
    assert second.values == first.values and second.usage.cached_calls == 4


@pytest.mark.ray
def test_ops_budget_raises(ray_session, model_server):
    model_server.reply = records(kind)
    with pytest.raises(rlm_ray.LimitExceededError) as info:
        ops.map(
            "x", sightings(50, 50), **settings(model_server, max_sub_calls=2, max_batch_items=5)
        )
    assert info.value.limit == "max_sub_calls"
    assert len(model_server.requests) <= 2


@pytest.mark.ray
def test_ops_over_a_table(ray_session, model_server):
    model_server.reply = records(kind)
    table = pa.table({"text": ["seen: owl", "seen: pike", "seen: owl"]})
    kinds = ops.classify(table, LABELS, **settings(model_server))
    assert kinds.values == ["BIRD", "FISH", "BIRD"]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda s: ops.classify(["a"], [], **s), "`labels` must be a non-empty list"),
        (lambda s: ops.map("", ["a"], **s), "ops.map: `instruction` must be a non-empty str"),
        (lambda s: ops.filter("c", [1, 2], **s), "ops.filter: `items[0]` is int"),
        (lambda s: ops.map("x", ["a"], sub_model="m", **s), "settings of an RLM"),
        (lambda s: ops.map("x", ["a"], max_batch_items=0, **s), "`max_batch_items`"),
    ],
)
def test_ops_usage_mistakes_are_config_errors(model_server, call, message):
    with pytest.raises(rlm_ray.ConfigError) as info:
        call(settings(model_server))
    assert message in str(info.value)
    assert model_server.requests == []


@pytest.mark.ray
def test_ops_hold_the_fan_out_at_the_gateways_for_rlm_rays_own_server(
    ray_session, model_server, monkeypatch
):
    """rlm-ray's own model server answers one request per slot at a time: sent a whole scan at
    once, the later requests outwait the request timeout and are sent again (300 records: 147
    answered, then none for 450 s). The gateways keep two calls per slot in flight and hold
    the rest. The scripted server stands in for the local model's server here."""
    import ray

    from rlm_ray import runtime
    from rlm_ray.config import RLMConfig
    from rlm_ray.front import settings as settings_module
    from rlm_ray.runtime import model_servers
    from rlm_ray.runtime.backend import LOCAL_IN_FLIGHT_PER_SLOT

    node = ray.get_runtime_context().get_node_id()
    served = SimpleNamespace(api_bases={"local": {node: model_server.url}})
    monkeypatch.setattr(settings_module, "find_parts", lambda spec: None)  # no model files
    monkeypatch.setattr(settings_module, "check_xllamacpp", lambda spec: None)
    monkeypatch.setattr(
        runtime.Launcher,
        "start_servers",
        lambda self, stage=None: served if self.settings.models.model == "local" else None,
    )
    monkeypatch.setattr(model_servers, "stop_servers", lambda servers: None)
    model_server.reply = records(kind)
    model_server.latency_s = 0.5  # slower than sending the scan: every call would be in flight
    model_server.reset_stats()
    leftover = model_server.in_flight  # an earlier test's requests still running (shared server)
    items = sightings(40, 40)
    kept = ops.filter("Is it a bird?", items, model="local", local_server_slots=1)
    assert kept.values == [r for r in items if kind("Condition", r) == "Yes"]
    assert kept.usage.calls == model_server.request_count == 40  # one item a call, no retry
    gateways = len(runtime.get_runtime(RLMConfig()).gateways)  # the ones ops used
    cap = LOCAL_IN_FLIGHT_PER_SLOT * gateways  # one slot
    assert 2 <= model_server.peak_concurrency <= cap + leftover
    # the same scan sent to a server of the user's own is not held back
    model_server.reset_stats()
    ops.filter("Is it a bird?", items, **settings(model_server, max_batch_items=1))
    assert model_server.peak_concurrency > cap + leftover


# -- labels of several words (issue 30) -------------------------------------------------------------
DELIVERY, BILLING = "late or lost delivery", "billing"
MULTI_WORD = [DELIVERY, BILLING, "praise", "question"]
# What a small model answers to a multi-word label list, and the label each answer names.
ANSWERS = {
    "my parcel is a week late": ("Late delivery", DELIVERY),  # the label's words
    "the box never came": ("Lost delivery.", DELIVERY),
    "charged twice": ("Billing issue", BILLING),  # starts with a label
    "they took my money twice": ("2", BILLING),  # the label's number
    "where is the shop": ("Question", "question"),
    "great service": ("praise", "praise"),
    "it rained on tuesday": ("weather", "unknown"),  # names no label
    "the sky is blue": ("none", "unknown"),  # fits none
}


def multi_word_kind(task: str, item: str) -> str:
    return next(answer for text, (answer, _) in ANSWERS.items() if text in item)


@pytest.mark.ray
def test_ops_classify_maps_answers_to_multi_word_labels_and_counts_unknown(
    ray_session, model_server
):
    model_server.reply = records(multi_word_kind)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kinds = ops.classify(list(ANSWERS), MULTI_WORD, **settings(model_server, max_batch_items=1))
    assert kinds.values == [label for _, label in ANSWERS.values()]
    assert kinds.unknown == 2  # told to the caller, who would otherwise see nothing
    assert not any("got no label" in str(w.message) for w in caught)  # 2 of 8: no warning
    mostly_unknown = ["it rained on tuesday", "the sky is blue", "great service"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kinds = ops.classify(
            mostly_unknown, MULTI_WORD, **settings(model_server, max_batch_items=1)
        )
    assert kinds.unknown == 2 and any("got no label" in w for w in kinds.warnings)
    assert any("got no label" in str(w.message) for w in caught)


@pytest.mark.ray
def test_llm_classify_tells_the_model_how_many_items_are_unknown(make_rlm, model_server):
    root = f"""
    labels = llm_classify(context, {MULTI_WORD!r})
    print(labels)
    """
    model_server.reply = records(multi_word_kind, default=turns(code(root), "FINAL(done)"))
    result = make_rlm(prompt="paper").completion("q", list(ANSWERS))
    output = result.trace.iterations[0].cells[0].output
    assert str([label for _, label in ANSWERS.values()]) in output
    assert (
        "[llm_classify] 2 of 8 items are 'unknown'; answers that named no label: 'weather'"
        in output
    )
