"""`model="local"` without the real model: finding parts, assembly, checksum, clear errors, prompts.

The real model runs in tests/test_real_model.py (marker `real_model`, run by .ci/run after the
main suite).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util

import pytest

from rlm_ray import RLM
from rlm_ray.errors import ConfigError, LLMError
from rlm_ray.local.local_model import LOCAL_MODELS, LocalModel, check_xllamacpp, model_path
from rlm_ray.models.llm import LLMRequest
from rlm_ray.prompting import plan_prompt, prompts, small_prompt


@pytest.fixture
def fake_parts(tmp_path, monkeypatch):
    """Three importable packages `rlmfakepartN` holding data/partNN.bin, and their LocalModel."""
    chunks = [b"GGUF-head-" * 1000, b"middle" * 777, b"tail!"]
    site = tmp_path / "site"
    for number, chunk in enumerate(chunks, 1):
        package = site / f"rlmfakepart{number}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "data" / f"part{number:02d}.bin").write_bytes(chunk)
    monkeypatch.syspath_prepend(str(site))
    whole = b"".join(chunks)
    spec = LocalModel(
        name="fake",
        served_name="fake-model",
        file_name="fake.gguf",
        package_prefix="rlmfakepart",
        parts=3,
        size=len(whole),
        sha256=hashlib.sha256(whole).hexdigest(),
        extra="local",
    )
    monkeypatch.setenv("RLM_RAY_CACHE", str(tmp_path / "cache"))
    return spec, whole


def test_parts_are_assembled_once_and_verified(fake_parts, tmp_path):
    spec, whole = fake_parts
    path = model_path(spec)
    assert path == tmp_path / "cache" / "fake.gguf"
    assert path.read_bytes() == whole
    assert (tmp_path / "cache" / "fake.gguf.sha256").read_text().strip() == spec.sha256
    stamp = path.stat().st_mtime_ns
    assert model_path(spec).stat().st_mtime_ns == stamp  # the cache is used, not re-assembled
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [
        "fake.gguf",
        "fake.gguf.sha256",
    ]


def test_a_truncated_cache_file_is_assembled_again(fake_parts):
    spec, whole = fake_parts
    path = model_path(spec)
    path.write_bytes(whole[:100])
    assert model_path(spec).read_bytes() == whole


def test_a_checksum_mismatch_is_a_config_error_and_leaves_nothing(fake_parts, tmp_path):
    spec, _ = fake_parts
    wrong = dataclasses.replace(spec, sha256="0" * 64)
    with pytest.raises(ConfigError, match=r"sha256 .* expected 0{64}.*--force-reinstall"):
        model_path(wrong)
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_missing_part_names_the_pip_command(fake_parts):
    spec, _ = fake_parts
    missing = dataclasses.replace(spec, parts=4)
    with pytest.raises(ConfigError, match=r'part 4 of 4 .*pip install "rlm-ray\[local\]"'):
        model_path(missing)


def test_rlm_local_without_the_extra_says_the_exact_pip_command(monkeypatch):
    for name in ("local", "local-small"):
        absent = dataclasses.replace(LOCAL_MODELS[name], package_prefix="rlm_ray_no_such_part")
        monkeypatch.setitem(LOCAL_MODELS, name, absent)
    with pytest.raises(ConfigError, match=r'pip install "rlm-ray\[local\]"'):
        RLM("local")
    with pytest.raises(ConfigError, match=r'pip install "rlm-ray\[local-small\]"'):
        RLM("openai/x", sub_model="local-small", api_base=None)


def test_missing_xllamacpp_names_the_pip_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        "importlib.util.find_spec", lambda name, *a: None if name == "xllamacpp" else real(name)
    )
    with pytest.raises(ConfigError, match=r'xllamacpp.*pip install "rlm-ray\[local\]"'):
        check_xllamacpp(LOCAL_MODELS["local"])


def test_local_with_an_api_base_is_refused():
    with pytest.raises(ConfigError, match="served by rlm-ray itself"):
        RLM("local", api_base="http://127.0.0.1:9/v1")


def test_the_pinned_checksums_are_full_sha256_digests():
    assert LOCAL_MODELS["local"].sha256.startswith("cc324af0")
    assert LOCAL_MODELS["local-small"].sha256.startswith("1d961463")
    for spec in LOCAL_MODELS.values():
        assert len(spec.sha256) == 64 and int(spec.sha256, 16) >= 0


# -- the gateway's choice of server ---------------------------------------------------------------
def test_a_request_goes_to_the_server_of_the_gateways_node():
    request = LLMRequest(
        model="openai/qwen",
        messages=[],
        api_base_by_node={"node-a": "http://127.0.0.1:1/v1", "node-b": "http://127.0.0.1:2/v1"},
    )
    assert request.for_node("node-b").api_base == "http://127.0.0.1:2/v1"
    assert request.for_node("node-b").api_base_by_node is None
    with pytest.raises(LLMError, match="no local model server"):
        request.for_node("node-c")
    plain = LLMRequest(model="openai/x", messages=[], api_base="http://h/v1")
    assert plain.for_node("node-a") is plain


# -- prompt variants ------------------------------------------------------------------------------
def test_prompts_are_chosen_by_model_or_by_name():
    assert prompts.choose("local") is prompts.SMALL
    assert prompts.choose("local-small") is prompts.SMALL
    assert prompts.choose("openai/gpt-4o-mini") is prompts.PAPER
    assert prompts.choose("local", "paper") is prompts.PAPER
    assert prompts.choose("openai/x", "small") is prompts.SMALL
    with pytest.raises(ConfigError, match=r"unknown prompt 'tiny'; known prompts: \['paper'"):
        prompts.choose("openai/x", "tiny")


def test_an_unknown_prompt_fails_at_construction():
    with pytest.raises(ConfigError, match="unknown prompt"):
        RLM("openai/x", api_base="http://127.0.0.1:9/v1", prompt="tiny")


def test_every_variant_formats_and_keeps_its_examples_in_the_protocol():
    def system(context, variant):
        return prompts.system_prompt(
            context,
            can_recurse=False,
            sub_window_chars=1000,
            max_output_chars=500,
            cell_timeout_s=5,
            variant=variant,
        )

    for variant in prompts.PROMPTS.values():
        text = system("x" * 100, variant)
        # every placeholder filled (literal braces are JSON and code, e.g. {"shape": ...})
        placeholders = ("context_description", "sub_window_chars", "recursion_note")
        placeholders += ("max_output_chars", "cell_timeout")
        assert not any("{" + name + "}" in text for name in placeholders)
        # the model is told the context's size: in the system text, or in the first turn
        assert "100 total characters" in text + prompts.first_turn(variant, "x" * 100)
        roles = [m["role"] for m in variant.few_shot_messages()]
        assert roles == ["user", "assistant"] * len(variant.few_shot)
    for variant in (prompts.SMALL, prompts.SMALL_CODE):
        # nothing of the context before the first turn: a prompt-caching server reads the
        # system text and the examples once for every run
        assert system("x" * 100, variant) == system(["y"] * 7, variant)


@pytest.mark.parametrize(
    "query, advice",
    [
        ("How many of these messages complain about shipping or delivery?", "filter"),
        ("What is the number of records from user 7 that are questions?", "filter"),
        ("How many messages from user 7 have the label question?", "count"),
        ("Count the tickets that are BROKEN. Each ticket is BROKEN or THANKS.", "count"),
        ("How many are complaints? A complaint (unhappy) or other (praise, thanks).", "count"),
        ("Summarise what the complaints are about.", "any"),
        ("What percentage of the messages are complaints?", "filter"),
        ("What share of the records falls in the category 'refund'?", "count"),
        ("What is the access code of the vault?", "any"),
        ("Which label is the most common among the reviews?", "most"),
        ("Which label occurs least often? Answer with the label.", "least"),
        ("Which category shows up MOST frequently?", "most"),
        ("Name the label that the largest number of messages have.", "most"),
        ("Which type of ticket is the commonest?", "most"),
        ("What is the rarest label in the data?", "least"),
        ("Which category has the fewest reviews?", "least"),
        ("Give the class with the smallest number of records.", "least"),
        ("Who wrote the largest number of tickets (give the user number)?", "any"),
    ],
)
def test_the_small_first_turn_tells_a_counting_query_which_operator_to_use(query, advice):
    turn = prompts.first_turn(prompts.SMALL, ["a", "b"], query)
    assert (small_prompt.APPROACH_COUNT in turn) is (advice == "count")
    assert (small_prompt.APPROACH_FILTER in turn) is (advice == "filter")  # names no labels
    assert (small_prompt.APPROACH_ANY in turn) is (advice == "any")
    if advice in ("most", "least"):  # the one line that prints the label asked for
        pick = "[0]" if advice == "most" else "[-1]"
        line = f'collections.Counter(x for x in labels if x != "unknown").most_common(){pick}'
        assert f"the {advice} common label" in turn and line in turn
    # small-code has no operators to point at: it always gets the general advice
    assert small_prompt.APPROACH_ANY in prompts.first_turn(prompts.SMALL_CODE, ["a"], query)


def test_the_plans_first_turn_shows_the_records_and_leaves_the_route_to_the_model():
    """small-plans reads no query's English: every query gets the same first turn (the records
    found, their fields, the query), and the model chooses a plan or code under the plan
    schema. The examples are marked as made-up data."""
    context = "2026-03-01 | user 7 | my parcel is late\n2026-03-02 | user 9 | thanks!"
    turns = {
        q: prompts.first_turn(prompts.SMALL_PLANS, context, q)
        for q in ("How many messages complain about delivery?", "What is the access code?")
    }
    first, second = turns.values()
    assert first.replace("{query}", "") == second.replace("{query}", "")
    assert first.startswith(plan_prompt.USER_TASK)
    assert "Records found: 2 records, fields: date (all different" in first
    assert first.endswith("Query: {query}\nYour reply (JSON):")
    examples = [user for user, _ in prompts.SMALL_PLANS.few_shot if "Query:" in user]
    assert examples and all(user.startswith(plan_prompt.EXAMPLE) for user in examples)


@pytest.mark.ray
def test_the_small_prompt_reaches_the_model_with_examples_and_stop_sequences(
    make_rlm, model_server
):
    """The model writes fake output after its block; the stop sequence cuts it off, the code
    really runs, and the answer is the real output."""

    def reply(request):
        if request.turn == len(prompts.SMALL.few_shot):  # the first real turn
            return "```repl\nprint(len(context))\n```\nOutput of code block 1:\n999\nFINAL(999)"
        return "FINAL(" + request.last_user.split("\n")[1] + ")"

    model_server.reply = reply
    result = make_rlm(prompt="small").completion("How long is it?", "abcdefg")
    assert result.answer == "7"
    first = model_server.requests[0]
    assert first.body["stop"] == list(prompts.SMALL.stop)
    examples = prompts.SMALL.few_shot_messages()
    assert first.messages[1 : 1 + len(examples)] == examples
    assert first.messages[-1]["content"] == (
        "Your context is a str with 7 total characters.\nIt begins:\nabcdefg\n"
        "Query: How long is it?\n(A fact to find: search the text with re. Records to count or "
        "pick by their meaning: llm_classify.) Your first ```repl block:"
    )
    assert result.trace.iterations[0].response == "```repl\nprint(len(context))"


@pytest.mark.ray
def test_the_paper_prompt_stays_the_default_and_sets_no_stop(make_rlm, model_server):
    model_server.reply = lambda request: "FINAL(ok)"
    assert make_rlm().completion("q", "ctx").answer == "ok"
    first = model_server.requests[0]
    assert "stop" not in first.body
    assert first.messages[0]["content"].startswith("You are tasked with answering a query")
    assert len(first.messages) == 2


def test_cli_prompt_flag_is_checked(tmp_path, capsys):
    from rlm_ray.cli import main

    context = tmp_path / "c.txt"
    context.write_text("hello")
    argv = ["run", "--model", "openai/x", "--api-base", "http://127.0.0.1:9/v1"]
    argv += ["--context", str(context), "--query", "q", "--prompt", "tiny"]
    assert main(argv) == 1
    assert "unknown prompt 'tiny'" in capsys.readouterr().err


def test_cli_local_model_without_the_extra(monkeypatch, tmp_path, capsys):
    from rlm_ray.cli import main

    absent = dataclasses.replace(LOCAL_MODELS["local"], package_prefix="rlm_ray_no_such_part")
    monkeypatch.setitem(LOCAL_MODELS, "local", absent)
    context = tmp_path / "c.txt"
    context.write_text("hello")
    assert main(["run", "--model", "local", "--context", str(context), "--query", "q"]) == 1
    assert 'pip install "rlm-ray[local]"' in capsys.readouterr().err
