"""A corpus on Ray, end to end: chunks put once, views as `context`, handles to sub-calls, grep
as Ray tasks, a loaded corpus reused by follow-up questions. The model is the scripted server.
"""

from __future__ import annotations

import pyarrow as pa
import pytest
import ray

import rlm_ray
from rlm_ray.testing import by_marker, code, turns

pytestmark = pytest.mark.ray

SECRET_DOC = 7
DOCS = [
    f"Report {i}. "
    + "Nothing to see in this paragraph. " * 300
    + (" The launch code is 4711." if i == SECRET_DOC else "")
    for i in range(12)
]
TEXT = "\n\n".join(DOCS)


@pytest.fixture(scope="module")
def loaded(ray_session):
    return rlm_ray.load(
        pa.table({"text": DOCS, "source": [f"r{i}" for i in range(12)]}), chunk_size=20_000
    )


def test_load_puts_chunks_and_the_driver_reads_them(loaded):
    assert len(loaded) == len(TEXT)
    assert [len(c) for c in loaded.chunks()] == [20_000] * 6 + [len(TEXT) - 120_000]
    assert str(loaded[119_990:120_010]) == TEXT[119_990:120_010]
    assert loaded.documents[3].source == "r3"


def test_a_view_pickles_as_handles_not_text(loaded):
    small = len(ray.cloudpickle.dumps(loaded[:10]))
    big = len(ray.cloudpickle.dumps(loaded))
    assert big < 2_000 and abs(big - small) < 100, (small, big)


def test_grep_runs_as_tasks_and_finds_matches_across_chunk_boundaries(loaded):
    starts = [m.start() for m in __import__("re").finditer(r"Nothing to see", TEXT)]
    found = loaded.grep(r"Nothing to see", max_matches=100_000)
    assert [m.offset for m in found] == starts  # every one once, boundaries included
    (code_match,) = loaded.grep(r"launch code is (\d+)")
    assert code_match.doc == SECRET_DOC and code_match.text == "launch code is 4711"


SUB = """
chunks = context.chunks()
answers = [llm_query(['SUB: does this text hold a launch code?', c]) for c in chunks]
hits = [i for i, a in enumerate(answers) if a == 'yes']
ms = context.grep(r'launch code is (\\d+)')
print('hits', hits, 'docs', len(context.documents), 'match', ms[0].doc, ms[0].text)
"""


def test_llm_query_gets_a_handle_and_the_gateway_reads_the_chunk(make_rlm, model_server, loaded):
    def sub(request):
        return "yes" if "launch code is 4711" in request.last_user else "no"

    secret_chunk = TEXT.index("launch code") // 20_000
    model_server.reply = by_marker(
        {"SUB:": sub},
        default=turns(
            code(SUB),
            lambda r: (
                "FINAL(ok)"
                if f"hits [{secret_chunk}] docs 12 match 7" in r.last_user
                else "FINAL(bad)"
            ),
        ),
    )
    result = make_rlm().completion("Find the launch code", loaded)
    assert result.answer == "ok"
    subs = [r for r in model_server.requests if r.first_user.startswith("SUB:")]
    assert len({r.last_user for r in subs}) == 7  # one per chunk (a retry repeats one)
    # the server saw each chunk's text; the trace of the REPL call holds only the handle
    assert (
        sorted(len(r.last_user) for r in subs)[-1]
        == len("SUB: does this text hold a launch code?") + 2 + 20_000
    )
    calls = result.trace.iterations[0].cells[0].subcalls
    assert all("<corpus [" in c.prompt_preview for c in calls), calls[0].prompt_preview
    assert "Nothing to see" not in "".join(c.prompt_preview for c in calls)


def test_recursive_llm_child_gets_a_view_over_the_same_chunks(make_rlm, model_server, loaded):
    child = "FINAL(f'{len(context)} {len(context.documents)} ' + context.grep('launch code is (\\\\d+)')[0].text)"
    model_server.reply = by_marker(
        {
            "CHILD:": turns(code(child)),
        },
        default=turns(
            code(
                "doc = context.documents[7]\n"
                "r = recursive_llm('CHILD: find the code', doc)\n"
                "FINAL(r)"
            )
        ),
    )
    result = make_rlm(max_depth=2).completion("q", loaded)
    assert result.answer == f"{len(DOCS[SECRET_DOC])} 1 launch code is 4711"
    child_system = next(r.system for r in model_server.requests if r.has("CHILD:"))
    assert "a corpus (a part of a larger corpus) of 1 documents" in child_system
    # root and child read the same corpus, by the same object-store id
    child_trace = result.trace.iterations[0].cells[0].subcalls[0].child
    assert result.trace.context_id and child_trace.context_id == result.trace.context_id


def test_a_loaded_corpus_serves_follow_up_questions_without_new_puts(
    make_rlm, model_server, loaded, monkeypatch
):
    puts = []
    real_put = ray.put
    monkeypatch.setattr(
        ray, "put", lambda value, **kw: puts.append(type(value)) or real_put(value, **kw)
    )
    model_server.reply = turns(code("FINAL(len(context.documents))"))
    rlm = make_rlm()
    for _ in range(3):
        assert rlm.completion("How many reports?", loaded).answer == "12"
    assert puts == []  # the chunks were put once, by `load`


def test_a_table_is_a_corpus_cut_by_the_config(make_rlm, model_server):
    model_server.reply = turns(
        code("FINAL(f'{len(context.documents)} {[len(c) for c in context.chunks()]}')")
    )
    table = pa.table({"content": ["a" * 10, "b" * 20, "c" * 30]})
    answer = make_rlm(chunk_by="documents", chunk_size=2).completion("q", table).answer
    assert answer == "3 [34, 30]"


def test_depth_zero_reads_the_corpus_in_the_gateway(make_rlm, model_server):
    model_server.reply = lambda r: "seen" if "b" * 20 in r.last_user else "missing"
    table = pa.table({"text": ["a" * 10, "b" * 20]})
    assert make_rlm(max_depth=0).completion("q", table).answer == "seen"


def test_load_reads_a_directory(ray_session, tmp_path):
    for i in range(3):
        (tmp_path / f"n{i}.md").write_text(f"note {i}")
    loaded = rlm_ray.load(tmp_path)
    assert [str(d) for d in loaded] == ["note 0", "note 1", "note 2"]
    assert [d.source for d in loaded.documents][0].endswith("n0.md")


def test_a_runaway_grep_is_stopped_with_its_cell(make_rlm, model_server):
    table = pa.table({"text": ["a" * 40 + "b", "fine"]})
    model_server.reply = turns(
        code("context.grep('(a+)+$')"),
        code("print('after', len(context.grep('fine')))"),
        lambda r: "FINAL(ok)" if "after 1" in r.last_user else "FINAL(bad)",
    )
    result = make_rlm(cell_timeout_s=3).completion("q", table)
    first, second = (it.cells[0] for it in result.trace.iterations[:2])
    assert first.timed_out, first
    assert second.output == "after 1\n", second
    assert result.answer == "ok"
