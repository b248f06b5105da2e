"""Record operators without Ray: packing, prompts, parsing, labels, retries, dedupe; and the
REPL's `llm_map` / `llm_filter` / `llm_classify` over in-process threads (`ThreadBackend`)."""

from __future__ import annotations

import math
import pickle

import pyarrow as pa
import pytest

from rlm_ray.core.repl import REPLSession, REPLSettings
from rlm_ray.corpus import Corpus, record_items, record_key, render
from rlm_ray.operators import batching, record_ops
from rlm_ray.operators.record_ops import (
    UNKNOWN,
    classify_op,
    filter_op,
    map_op,
    normalise_label,
    pack,
    parse_numbered,
    retry_groups,
)
from rlm_ray.testing import FakeLLM, records
from rlm_ray.testing.local_corpus import local_corpus
from rlm_ray.testing.thread_backend import ThreadBackend

# -- pure pieces -------------------------------------------------------------------------------


def test_pack_caps_items_per_batch_and_keeps_order():
    batches = pack([10] * 100, map_op("x"), window_tokens=1_000_000, max_items=40)
    assert [len(b) for b in batches] == [40, 40, 20]
    assert [i for b in batches for i in b] == list(range(100))


def test_pack_fills_the_window_by_size():
    op = filter_op("is it about birds?")
    window = 2_000
    batches = pack([300] * 50, op, window_tokens=window)
    budget = batching.usable_tokens(window)
    assert 1 < len(batches) < 50
    for batch in batches:  # each batch's estimate fits
        prompt = op.prompt(["y" * 300] * len(batch))
        assert len(prompt) / batching.CHARS_PER_TOKEN + op.answer_tokens * len(batch) <= budget


def test_an_item_too_long_for_any_batch_is_cut_with_a_warning():
    seen = []

    def ask(prompts):
        seen.extend(prompts)
        return ["[1] short"] * len(prompts)

    out = record_ops.run(map_op("len?"), ["z" * 50_000], ["k"], ask, window_tokens=2_000)
    assert out.values == ["short"] and "cut" in out.warnings[0]
    assert len(seen[0]) < 2_000 * batching.CHARS_PER_TOKEN


@pytest.mark.parametrize(
    "reply, expected",
    [
        ("[1] a\n[2] b\n[3] c", {1: "a", 2: "b", 3: "c"}),
        ("1. a\n2: b\n3) c", {1: "a", 2: "b", 3: "c"}),
        ("Sure!\n[2] b\n[1] a", {1: "a", 2: "b"}),
        ("[1] a\nmore of a\n[2] b", {1: "a\nmore of a", 2: "b"}),
        ("[1] a\n[1] again\n[2] b", {2: "b"}),  # a number given twice is ambiguous
        ("[1] a\n[7] out of range", {1: "a"}),
        ("**[1]** a", {1: "a"}),
        ("no numbers at all", {}),
    ],
)
def test_parse_numbered(reply, expected):
    assert parse_numbered(reply, 3) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Billing", "Billing"),
        ("billing", "Billing"),
        ('"Billing".', "Billing"),
        ("Label: Access", "Access"),
        ("It is about Access, clearly", "Access"),
        ("unknown", UNKNOWN),
        ("Billing or Access", None),  # two labels named: not usable
        ("weather", None),
    ],
)
def test_normalise_label(text, expected):
    got = normalise_label(text, ("Billing", "Access", "Hardware"))
    assert (got if isinstance(got, str) else None) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("praise", "other"),  # a word of one label's meaning: that label
        ("Praise.", "other"),
        ("a problem", "complaint"),
        ("thanks, a question", "other"),
        ("a", None),  # too short to mean anything
        ("weather", None),
        ("complaint", "complaint"),  # a label itself still wins
    ],
)
def test_an_answer_that_names_a_labels_meaning_is_that_label(text, expected):
    meanings = ("the writer is unhappy about a problem", "praise, thanks, a question")
    got = normalise_label(text, ("complaint", "other"), meanings)
    assert (got if isinstance(got, str) else None) == expected
    op = classify_op(["complaint", "other"], meanings)
    assert op.parse(text, 1) == ({1: expected} if expected else {})


def test_filter_answers_are_yes_or_no_only():
    op = filter_op("c")
    assert op.parse("[1] Yes.\n[2] no\n[3] maybe", 3) == {1: True, 2: False}


def test_a_single_item_may_be_answered_without_its_number():
    assert classify_op(["A", "B"]).parse("B", 1) == {1: "B"}
    assert map_op("x").parse("just text", 1) == {1: "just text"}


def test_retry_groups_split_then_narrow_then_stop():
    assert retry_groups([0, 1, 2, 3], set()) == [[0, 1], [2, 3]]
    assert retry_groups([0, 1, 2, 3], {0, 2}) == [[1, 3]]
    assert retry_groups([0, 1, 2, 3], {0, 1, 2, 3}) == []
    assert retry_groups([5], set()) == []  # a single item is not retried again


def test_prompt_keeps_views_as_parts_and_numbers_items():
    corpus = local_corpus(pa.table({"text": ["alpha doc", "beta doc"]}))
    docs = list(corpus.documents)
    prompt = map_op("Summarise").prompt(["plain", *docs])
    assert isinstance(prompt, list) and sum(isinstance(p, Corpus) for p in prompt) == 2
    text = render(prompt)
    assert "[1] plain\n[2] alpha doc\n[3] beta doc\n" in text
    assert text.startswith("Instruction: Summarise")


def test_one_item_is_asked_in_a_short_form_that_ends_with_it():
    op = classify_op(["complaint", "praise"], ["unhappy", "happy"])
    first, second = op.prompt(["The kettle broke."]), op.prompt(["Lovely scarf!"])
    assert first.startswith("Classify the text below as one of: complaint (unhappy); praise ")
    assert first.endswith(" Answer with the label only.\n\nText: The kettle broke.\nLabel:")
    # everything before the item is the same for every item: a server's prompt cache reuses it
    assert first.split("Text: ")[0] == second.split("Text: ")[0]
    assert "[1]" not in first
    assert (
        classify_op(["a", "b"]).prompt(["x"]).startswith("Classify the text below as one of: a; b.")
    )
    # a filter's item comes first, its question last
    assert filter_op("mentions tea").prompt(["x"]) == "Item: x" + record_ops.FILTER_QUESTION.format(
        "mentions tea"
    )
    assert map_op("Summarise").prompt(["x"]).startswith("Instruction: Summarise\nApply")
    assert filter_op("c").parse("Yes, it does.", 1) == {1: True}
    assert op.parse("praise", 1) == {1: "praise"}


def test_a_single_label_is_asked_as_a_yes_or_no_condition():
    # with one label before the item, the 1.5B model gave all 60 items that label
    op = classify_op(["COMPLAIN"], ["complains about shipping"])
    assert op.prompt(["x"]) == "Item: x" + record_ops.FILTER_QUESTION.format(
        "complains about shipping"
    )
    assert (
        classify_op(["late"])
        .prompt(["x"])
        .endswith(
            "condition: it is late? "
            + "Answer yes only if it clearly does. Answer with one word, yes or no."
        )
    )
    assert op.parse("Yes.", 1) == {1: "COMPLAIN"} and op.parse("no", 1) == {1: UNKNOWN}
    assert op.parse("COMPLAIN", 1) == {1: "COMPLAIN"}  # a model answering with the label
    items = ["late box", "nice scarf", "late again", "nice scarf"]
    ask, fake, _ = answering(lambda task, item: "yes" if "late" in item else "no")
    out = record_ops.run(op, items, items, ask, window_tokens=100_000, max_items=1)
    assert out.values == ["COMPLAIN", UNKNOWN, "COMPLAIN", UNKNOWN] and fake.calls == 3


def test_one_view_stays_a_view_in_the_short_form():
    doc = next(iter(local_corpus(pa.table({"text": ["alpha doc"]})).documents))
    prompt = map_op("Summarise").prompt([doc])
    assert isinstance(prompt, list) and isinstance(prompt[1], Corpus)
    assert render(prompt).endswith("Item: alpha doc\nAnswer:")


def test_small_local_models_get_smaller_batches():
    small = record_ops.SMALL_MODEL_BATCH_ITEMS
    assert record_ops.batch_items_for("local") == record_ops.batch_items_for("local-small") == small
    assert record_ops.batch_items_for("openai/gpt-4o-mini") == record_ops.MAX_BATCH_ITEMS > small


# -- the rounds ----------------------------------------------------------------------------------


def answering(answer, garble_above=None):
    """An `ask` that plays the scripted `records` model and counts the prompts it gets."""
    fake = FakeLLM(records(answer, garble_above=garble_above))
    sent: list[int] = []

    def ask(prompts):
        sent.append(len(prompts))
        return [fake([{"role": "user", "content": render(p)}]).text for p in prompts]

    return ask, fake, sent


def test_run_dedupes_packs_and_maps_back_in_order():
    items = [f"item {i % 7}" for i in range(100)]
    ask, fake, _ = answering(lambda task, item: item.upper())
    out = record_ops.run(map_op("upper"), items, items, ask, window_tokens=100_000, max_items=3)
    assert out.values == [i.upper() for i in items]
    assert fake.calls == math.ceil(7 / 3)  # 7 distinct items, 3 per batch
    assert out.warnings == []


def test_run_splits_garbled_batches_until_they_parse():
    items = [f"r{i}" for i in range(16)]
    ask, fake, sent = answering(lambda task, item: "yes" if item.endswith("1") else "no", 2)
    out = record_ops.run(filter_op("ends in 1"), items, items, ask, window_tokens=100_000)
    assert out.values == ["r1", "r11"]
    assert sent == [1, 2, 4, 8]  # 16 -> 8+8 -> 4x4 -> 8x2 (answered)
    assert out.rounds == 4


def test_run_gives_the_default_and_warns_when_even_one_item_fails():
    items = ["good", "bad", "good2"]
    ask, _, _ = answering(lambda task, item: "weather" if item == "bad" else "A")
    out = record_ops.run(classify_op(["A", "B"]), items, items, ask, window_tokens=100_000)
    assert out.values == ["A", UNKNOWN, "A"]
    assert "1 item(s) got no usable answer" in out.warnings[0] and "index 1" in out.warnings[0]


def test_records_and_keys():
    assert record_items("a\n\n  \nb\n", "llm_map") == ["a", "b"]
    corpus = local_corpus(pa.table({"text": ["x", "y", "x"]}))
    docs = record_items(corpus, "llm_map")
    assert len(docs) == 3 and all(isinstance(d, Corpus) for d in docs)
    assert len({record_key(d) for d in docs}) == 3  # spans, not text: nothing is read
    with pytest.raises(TypeError, match=r"llm_filter: `items\[1\]` is int"):
        record_items(["a", 2], "llm_filter")
    with pytest.raises(TypeError, match="llm_map: `items` must be"):
        record_items(5, "llm_map")


# -- the REPL functions over threads ---------------------------------------------------------------


def repl_with(answer, garble_above=None, window=100_000):
    fake = FakeLLM(records(answer, garble_above=garble_above))
    backend = ThreadBackend(fake)
    settings = REPLSettings(can_recurse=False, sub_context_window_tokens=window)
    return fake, lambda ctx: REPLSession(ctx, backend, "fake", settings)


def test_repl_operators_over_a_str_of_lines():
    lines = "\n".join(["the owl hoots", "a cat naps", "", "the hawk dives", "a cat naps"])

    def answer(task, item):
        bird = any(word in item for word in ("owl", "hawk"))
        if task.startswith("Labels"):
            return "BIRD" if bird else "OTHER"
        return "yes" if bird else "no"

    fake, make = repl_with(answer)
    out = make(lines).run(
        "birds = llm_filter('Is it about a bird?', context)\n"
        "kinds = llm_classify(context.splitlines(), ['BIRD', 'OTHER'])\n"
        "print(birds, kinds)"
    )
    assert out.trace.error is None, out.trace.error
    assert out.trace.output == (
        "['the owl hoots', 'the hawk dives'] ['BIRD', 'OTHER', 'OTHER', 'BIRD', 'OTHER']\n"
    )
    # one batch per operator: a str gives its 4 non-empty lines, 3 distinct; the list 5 items,
    # 4 distinct ("" is a record too)
    assert len(out.trace.subcalls) == 2


def test_repl_answers_can_be_read_by_record():
    # The 1.5B model's habit: `labels[r] for r in records`. It works, and the answers stay a list.
    def answer(task, item):
        if task.startswith("Instruction"):
            return item.lower()
        return "BIRD" if "owl" in item else "OTHER"

    fake, make = repl_with(answer)
    out = make(["the owl hoots", "a cat naps", "the owl hoots"]).run(
        "labels = llm_classify(context, ['BIRD', 'OTHER'])\n"
        "birds = [r for r in context if labels[r] == 'BIRD']\n"
        "print(len(birds), labels[0], labels[-1:], collections.Counter(labels)['OTHER'])\n"
        "print(llm_map('lower it', labels))\n"  # crosses the boundary as a plain list
        "labels['a dog barks']"
    )
    assert out.trace.output.splitlines()[0] == "2 BIRD ['BIRD'] 1"
    assert out.trace.output.splitlines()[1] == "['bird', 'other', 'bird']"
    assert "KeyError" in out.trace.error and "is not one of the records" in out.trace.error


def test_record_answers_pickle_as_a_plain_list():
    answers = record_ops.RecordAnswers(["A", "B"], ["x", "y"])
    assert answers["y"] == "B" and answers[0] == "A" and answers == ["A", "B"]
    copied = pickle.loads(pickle.dumps(answers))
    assert type(copied) is list and copied == ["A", "B"]


@pytest.mark.parametrize(
    "code, message",
    [
        ("llm_classify(['a'], [])", "llm_classify: `labels` must be a non-empty list of str"),
        (
            "llm_classify(['a'], 'A,B')",
            "llm_classify: `labels` must be a list of str (or a dict of label -> meaning), got str",
        ),
        ("llm_classify(['a'], ['A', 'a'])", "llm_classify: `labels` must be distinct"),
        ("llm_classify(['a'], ['A', 3])", "llm_classify: every label must be a non-empty str"),
        ("llm_map('', ['a'])", "llm_map: `instruction` must be a non-empty str"),
        ("llm_filter(3, ['a'])", "llm_filter: `condition` must be a str, got int"),
        ("llm_map('x', {'a': 1})", "llm_map: `items` must be a list of str"),
    ],
)
def test_repl_operator_arguments_are_checked(code, message):
    fake, make = repl_with(lambda task, item: "x")
    out = make(["a"]).run(code)
    assert out.trace.error is not None and message in out.trace.error
    assert fake.calls == 0


def test_repl_warns_in_the_output_when_an_item_never_parses():
    fake, make = repl_with(lambda task, item: "???" if item == "odd" else "A")
    out = make(["x", "odd", "y"]).run("print(llm_classify(context, ['A', 'B']))")
    assert out.trace.error is None, out.trace.error
    assert "[llm_classify warning] 1 item(s) got no usable answer" in out.trace.output
    assert "['A', 'unknown', 'A']" in out.trace.output


def test_repl_describe_names_the_element_type():
    _, make = repl_with(lambda task, item: "x")
    repl = make(["a", "b"])
    repl.run("n = 3\nmixed = [1, 'a']")
    assert repl.describe("context") == "list (2 items) of str"
    assert repl.describe("mixed") == "list (2 items) of mixed types (int, str)"
    assert repl.describe("n") == "int" and repl.describe("missing") is None


def test_classify_labels_may_carry_their_meanings():
    from rlm_ray.subcall_kinds.arguments import labels_arg

    labels, meanings = labels_arg({"BROKEN": "something does not work", "THANKS": "praise"})
    assert labels == ("BROKEN", "THANKS") and meanings == ("something does not work", "praise")
    prompt = record_ops.classify_op(labels, meanings).prompt(["the tap drips", "thanks!"])
    assert "- BROKEN: something does not work" in prompt and "- THANKS: praise" in prompt
    one = record_ops.classify_op(labels, meanings).prompt(["the tap drips"])
    assert "BROKEN (something does not work); THANKS (praise)." in one
    assert labels_arg(["a", "b"]) == (("a", "b"), ("", ""))
    assert "Labels: a, b" in record_ops.classify_op(("a", "b")).prompt(["x", "y"])
