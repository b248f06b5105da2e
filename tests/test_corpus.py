"""The corpus view without Ray: text and document behaviour, lazy reads, grep, handles, safety.

`local_corpus` serves chunks from this process and records which chunks were read, so each test
can check that only the touched chunks were fetched.
"""

from __future__ import annotations

import re
import types

import pyarrow as pa
import pytest

from rlm_ray import corpus
from rlm_ray.core.repl import REPLSession, REPLSettings
from rlm_ray.corpus import Corpus, Document, Match
from rlm_ray.errors import ConfigError
from rlm_ray.prompting import prompts
from rlm_ray.testing.local_corpus import local_corpus
from rlm_ray.types import LLMReply

DOCS = [
    "Alpha document. " * 150 + "needle-one here",
    "Short note: ünïcödé ✓ text",
    "",
    "Third: " + "x" * 2500 + " needle-two at the end",
]
TEXT = "\n\n".join(DOCS)


@pytest.fixture
def table():
    return pa.table(
        {"text": DOCS, "source": [f"d{i}.txt" for i in range(4)], "lang": ["en", "de", "", "en"]}
    )


@pytest.fixture
def view(table) -> Corpus:
    return local_corpus(table, chunk_size=1000)


def fetched(view: Corpus) -> list[int]:
    return view._source.fetched  # type: ignore[attr-defined]


# -- text behaviour --------------------------------------------------------------------------


def test_len_is_characters_and_str_is_the_joined_documents(view):
    assert len(view) == len(TEXT)
    assert str(view) == TEXT


@pytest.mark.parametrize(
    "a, b",
    [(0, 5), (995, 1010), (1000, 2000), (2390, 2420), (-30, None), (None, None), (3000, 10)],
)
def test_slices_read_exactly_the_reference_text(view, a, b):
    piece = view[a:b]
    assert isinstance(piece, Corpus)
    assert len(piece) == len(TEXT[a:b])
    assert str(piece) == TEXT[a:b]
    assert f"[{piece}]" == f"[{TEXT[a:b]}]"


def test_indexing_goes_by_character(view):
    assert view[0] == "A" and view[-1] == "d"
    i = TEXT.index("✓")
    assert view[i] == "✓"
    with pytest.raises(IndexError):
        view[len(TEXT)]
    with pytest.raises(TypeError):
        view["a"]
    with pytest.raises(ValueError, match="step"):
        view[::2]


def test_slicing_reads_nothing_and_str_reads_only_the_touched_chunks(view):
    piece = view[1500:2500]
    assert fetched(view) == []
    str(piece)
    assert fetched(view) == [1, 2]
    assert str(view[2500:3100][50:60]) == TEXT[2550:2560]
    assert fetched(view) == [1, 2, 2]


def test_str_methods_split_in_and_plus_work_on_the_text(view):
    head = view[:100]
    assert head.split() == TEXT[:100].split()
    assert head.split(".", 1) == TEXT[:100].split(".", 1)
    assert head.count("Alpha") == TEXT[:100].count("Alpha")
    assert head.lower() == TEXT[:100].lower()
    assert head.startswith("Alpha")
    assert "needle-two" in view and "nope" not in view
    assert head + "!" == TEXT[:100] + "!" and "!" + head == "!" + TEXT[:100]
    assert head == TEXT[:100] and view[:3] == view[:3]


def test_format_and_private_names_are_not_str_methods(view):
    for name in ("format", "format_map", "__class__x", "_private"):
        with pytest.raises(AttributeError):
            getattr(view[:5], name)


def test_too_large_a_read_is_a_clear_error(view, monkeypatch):
    monkeypatch.setattr(corpus.view, "MAX_MATERIALISE_CHARS", 1000)  # where the view reads it
    with pytest.raises(MemoryError, match="at most 1,000 are read"):
        str(view)
    assert len(str(view[:1000])) == 1000


# -- documents and chunks --------------------------------------------------------------------


def test_iteration_and_documents_give_documents(view):
    docs = list(view)
    assert [str(d) for d in docs] == DOCS
    assert all(isinstance(d, Document) for d in docs)
    assert len(view.documents) == 4
    third = view.documents[3]
    assert (third.doc, third.id, third.source, third.metadata) == (3, 3, "d3.txt", {"lang": "en"})
    assert str(view.documents[-1]) == DOCS[-1]
    assert str(view.documents[0:2]) == DOCS[0] + "\n\n" + DOCS[1]
    assert str(view.documents[1:]) == "\n\n".join(DOCS[1:])


def test_documents_of_a_slice_are_cut_to_it(view):
    start = TEXT.index("Short")
    piece = view[start - 10 : start + 5]
    assert [d.doc for d in piece] == [0, 1]
    assert [str(d) for d in piece] == [TEXT[start - 10 : start - 2], "Short"]


def test_chunks_are_the_stored_chunks_or_pieces_of_a_size(view):
    chunks = view.chunks()
    assert [len(c) for c in chunks] == [1000, 1000, 1000, 1000, len(TEXT) - 4000]
    assert "".join(str(c) for c in chunks) == TEXT
    assert [len(c) for c in view[500:1700].chunks()] == [500, 700]
    assert [str(c) for c in view[:25].chunks(10)] == [TEXT[:10], TEXT[10:20], TEXT[20:25]]
    with pytest.raises(ValueError):
        view.chunks(0)


@pytest.mark.parametrize(
    "chunk_by, size, lengths",
    [
        ("chars", 2000, [2000, 2000, len(TEXT) - 4000]),
        ("tokens", 1000, [4000, len(TEXT) - 4000]),  # 4 characters a token
        ("documents", 2, [len(DOCS[0]) + len(DOCS[1]) + 4, len(DOCS[2]) + len(DOCS[3]) + 2]),
    ],
)
def test_chunk_by(table, chunk_by, size, lengths):
    view = local_corpus(table, chunk_by=chunk_by, chunk_size=size)
    assert [len(c) for c in view.chunks()] == lengths
    assert str(view) == TEXT


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"chunk_by": "words"}, "`chunk_by` must be one of"),
        ({"chunk_size": 0}, "`chunk_size` must be a positive integer"),
        ({"chunk_size": "big"}, "`chunk_size` must be a positive integer"),
        ({"chunk_size": 10}, "tiny chunks"),
    ],
)
def test_bad_chunk_options_are_config_errors(table, kwargs, message):
    from rlm_ray import RLM, load

    with pytest.raises(ConfigError, match=message):
        local_corpus(table, **kwargs)
    with pytest.raises(ConfigError, match=message):
        RLM("openai/gpt-4o-mini", **kwargs)
    with pytest.raises(ConfigError, match=message):
        load(table, **kwargs)


@pytest.mark.parametrize(
    "bad, message",
    [
        (pa.table({"text": pa.array([], pa.string())}), "no rows"),
        (pa.table({"text": ["", ""]}), "have no text"),
        (pa.table({"number": [1, 2]}), "no text column"),
        (pa.table({"text": [1, 2]}), "not strings"),
    ],
)
def test_empty_or_textless_tables_are_refused(bad, message):
    from rlm_ray import RLM, load

    with pytest.raises(ConfigError, match=message):
        local_corpus(bad)
    with pytest.raises(ConfigError, match=message):
        load(bad)
    with pytest.raises(ConfigError, match=message):
        RLM("openai/gpt-4o-mini").completion("q", bad)


def test_metadata_columns_named_like_index_columns_are_kept():
    view = local_corpus(pa.table({"body": ["abc", "de"], "start": [5, 6], "length": [1, 2]}))
    assert str(view.documents[1]) == "de"
    assert view.documents[1].metadata == {"meta_start": 6, "meta_length": 2}


def test_loading_a_missing_path_is_a_config_error(tmp_path):
    from rlm_ray import load

    with pytest.raises(ConfigError):
        load(tmp_path / "nope")
    with pytest.raises(ConfigError, match="path or a pyarrow.Table"):
        load(42)


# -- grep ------------------------------------------------------------------------------------


def test_grep_finds_matches_with_document_and_position(view):
    matches = view.grep(r"needle-\w+")
    assert matches == [
        Match(
            0,
            DOCS[0].index("needle"),
            DOCS[0].index(" here"),
            TEXT.index("needle-one"),
            "needle-one",
        ),
        Match(
            3, DOCS[3].index("needle"), DOCS[3].index(" at"), TEXT.index("needle-two"), "needle-two"
        ),
    ]
    m = matches[1]
    assert str(view[m.offset : m.offset + len(m.text)]) == m.text
    assert str(view.documents[m.doc][m.start : m.end]) == m.text


def test_grep_sees_matches_across_chunk_boundaries_once(table):
    for size in (1000, 1003, 1007):  # boundaries fall inside and around the matches
        view = local_corpus(table, chunk_size=size)
        expected = [m.start() for m in re.finditer("Alpha document", DOCS[0])]
        assert [m.start for m in view.grep("Alpha document")] == expected


def test_grep_never_spans_documents_and_anchors_are_per_document(view):
    assert view.grep(r"here\s+Short") == []
    assert [m.doc for m in view.grep(r"^\w+", re.M)][:1] == [0]
    assert [m.text for m in view.grep(r"^Third")] == ["Third"]
    assert [m.text for m in view.grep(r"end$")] == ["end"]


def test_grep_on_a_slice_searches_only_the_slice_with_offsets_in_it(view):
    start = TEXT.index("needle-two") - 100
    piece = view[start:]
    assert [(m.doc, m.offset) for m in piece.grep("needle")] == [(3, 100)]
    assert [m.text for m in view[: TEXT.index("needle-one") + 3].grep("needle")] == []


def test_grep_limits_and_bad_patterns(view):
    assert len(view.grep("Alpha", max_matches=3)) == 3
    with pytest.raises(re.error):
        view.grep("(")
    with pytest.raises(ValueError):
        view.grep("a", max_matches=0)
    assert fetched(view) == []  # grep went through the source, not through reads here


# -- the system prompt -----------------------------------------------------------------------


def test_system_prompt_states_the_corpus_shape_and_api(view):
    text = prompts.describe_context(view)
    assert f"corpus of 4 documents with {len(TEXT):,} total characters" in text
    assert "stored as 5 chunks; chunk lengths: [1000, 1000, 1000, 1000, 976]" in text
    assert "context.grep(pattern" in text and "llm_query([instruction, chunk])" in text
    assert fetched(view) == []
    assert "a part of a larger corpus" in prompts.describe_context(view[10:20])


# -- handles in sub-calls --------------------------------------------------------------------


class RecordingBackend:
    """Records what the REPL hands to the backend; answers every call at once."""

    def __init__(self) -> None:
        self.llm_prompts: list = []
        self.rlm_contexts: list = []

    def start_llm(self, prompt, model):
        self.llm_prompts.append(prompt)
        return LLMReply(text="reply", model="fake")

    def start_rlm(self, query, context, model):
        self.rlm_contexts.append(context)
        return LLMReply(text="child", model="fake")

    def fetch(self, handles):
        return [(True, h) for h in handles]

    def cancel(self, handles):
        pass


def session(view, *, can_recurse=True):
    backend = RecordingBackend()
    repl = REPLSession(view, backend, "fake", REPLSettings(can_recurse=can_recurse))
    return repl, backend


def test_llm_query_sends_a_slice_as_a_handle(view):
    repl, backend = session(view)
    out = repl.run(
        "a = llm_query(context[1000:2000])\n"
        "b = llm_query(['Summarise:', context.documents[1]])\n"
        "print(a, b)"
    )
    assert out.trace.error is None, out.trace.error
    first, second = backend.llm_prompts
    assert isinstance(first[0], Corpus) and (first[0]._start, first[0]._stop) == (1000, 2000)
    assert second[0] == "Summarise:" and isinstance(second[2], Corpus)
    assert out.trace.output == "reply reply\n"
    assert fetched(view) == []  # the REPL read no chunk
    # where the call is made (the gateway, on Ray) the handles become the text
    assert corpus.render(second) == "Summarise:\n\n" + DOCS[1]
    assert fetched(view) == [2]  # the chunk that holds document 1


def test_an_fstring_reads_the_slice_in_the_repl(view):
    repl, backend = session(view)
    view._source.fetched.clear()
    out = repl.run("r = llm_query(f'Read: {context[:20]}')")
    assert out.trace.error is None
    assert backend.llm_prompts == ["Read: " + TEXT[:20]]


def test_recursive_llm_gives_the_child_a_view(view):
    repl, backend = session(view)
    out = repl.run("r = recursive_llm('what?', context.chunks()[2])\nprint(r)")
    assert out.trace.error is None
    (child,) = backend.rlm_contexts
    assert isinstance(child, Corpus) and (child._start, child._stop) == (2000, 3000)
    assert child._source is view._source  # the same chunks, no copy


def test_recursive_llm_at_the_depth_limit_sends_query_and_handle(view):
    repl, backend = session(view, can_recurse=False)
    assert repl.run("r = recursive_llm('what?', context[:50])").trace.error is None
    (prompt,) = backend.llm_prompts
    assert prompt[0] == "what?\n\nContext:\n" and isinstance(prompt[1], Corpus)


def test_bad_prompt_parts_are_the_models_errors(view):
    repl, _ = session(view)
    error = repl.run("llm_query(['a', 3])").trace.error
    assert "prompt parts must be str or corpus slices, got int" in error


# -- the sandbox: the view leaks nothing --------------------------------------------------------

CORPUS_ATTACKS = {
    "private source": "context._source",
    "private source of a chunk": "context.chunks()[0]._source",
    "documents internals": "context.documents._view",
    "document row": "context.documents[0]._row()",
    "bound method self": "context.grep.__self__",
    "property getter globals": "type(context).documents.fget.__globals__",
    "method globals": "type(context).grep.__globals__",
    "format walk on a slice": "context[:5].format('{0.__class__}')",
    "format_map on a slice": "context[:5].format_map({})",
    "class attribute walk": "type(context).__dict__",
    "match internals": "context.grep('Alpha')[0]._asdict()",
    "shape class fields": "context.corpus_shape().__dataclass_fields__",
    "rebuild over a fake source": "type(context)(1)",
    "write an attribute": "context.x = 1",
    "write to documents": "context.documents.x = 1",
    "slot write": "context._start = 0",
    "document generator frame": "iter(context).gi_frame.f_locals",
    "documents generator frame": "iter(context.documents).gi_frame",
    "documents generator code": "iter(context.documents).gi_code",
    "str method of a view": "context[:5].upper.__self__",
    "shape via mro": "type(context).mro()[-1].__subclasses__()",
}


@pytest.mark.parametrize("code", list(CORPUS_ATTACKS.values()), ids=list(CORPUS_ATTACKS))
def test_corpus_attack_fails_safely(view, code):
    repl, _ = session(view)
    out = repl.run(code + "\nprint('escaped')")
    assert out.trace.error is not None, out.trace.output
    assert "escaped" not in out.trace.output
    assert repl.sandbox.namespace["context"] is view
    assert (view._start, view._stop) == (0, len(TEXT))
    assert repl.run("print(len(context))").trace.output == f"{len(TEXT)}\n"


def test_public_attributes_hold_no_modules_or_arrow_objects(view):
    leaky = (types.ModuleType, pa.Table, pa.Array, pa.ChunkedArray)
    objects = [view, view[:10], view.documents[0], view.documents, view.grep("Alpha")[0]]
    for obj in objects:
        for name in dir(obj):
            if name.startswith("_"):
                continue
            value = getattr(obj, name)
            assert not isinstance(value, leaky), (type(obj).__name__, name)
            assert not type(value).__module__.startswith(("pyarrow", "ray")), name


def test_the_facade_tells_a_view_and_a_table_by_type(table, view):
    from rlm_ray.front.inputs import check_context, is_arrow_table, is_corpus

    assert is_corpus(view) and not is_corpus(table) and not is_corpus(str(view))
    assert is_arrow_table(table) and not is_arrow_table(view) and not is_arrow_table("t")
    assert check_context(view) is view and check_context(table) is table
