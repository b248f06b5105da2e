"""The `rlm-ray` command: stdout carries only the answer, errors are one line on stderr.

Where the command's own process matters (Ray's log lines at exit, `--quiet`, a Ray it starts
itself, `--address`), it runs as a child process; the rest runs `main()` in this process, on the
session's Ray (a child process is a new driver with a new pool: tens of seconds under load).
"""

from __future__ import annotations

import io
import json
import sys

import pytest
from helpers import run_cli, run_python

from rlm_ray.cli import main
from rlm_ray.testing import by_marker, code, turns


@pytest.fixture
def context_file(tmp_path):
    path = tmp_path / "haystack.txt"
    path.write_text("hay " * 1000 + "the magic number is 4817 " + "hay " * 1000)
    return path


@pytest.fixture
def address(ray_session):
    return ray_session.get_runtime_context().gcs_address


NEEDLE_SCRIPT = turns(
    code("import re\nm = re.search(r'magic number is (\\d+)', context)\nprint(m.group(1))"),
    lambda r: "FINAL(" + r.last_user.split("Output of code block 1:\n")[1].split()[0] + ")",
)


def run_scripted(server, context: str, *extra: str, key: str = "sk-test", stdin=None):
    """`rlm-ray run` against the scripted server, as a child process."""
    base = ["run", "--model", "openai/scripted", "--api-base", server.url, "--api-key", key]
    return run_cli(*base, "--context", context, *extra, stdin=stdin)


def run_here(capsys, server, context: str, *extra: str, key: str = "sk-test"):
    """`rlm-ray run` against the scripted server as `main()` in this process: (code, out, err)."""
    base = ["run", "--model", "openai/scripted", "--api-base", server.url, "--api-key", key]
    capsys.readouterr()
    code = main([*base, "--context", context, *extra])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.ray
def test_run_prints_only_the_answer(model_server, context_file, ray_session, capsys):
    # (the same as a child process with --address: test_ray_log_lines_never_reach_stdout)
    model_server.reply = NEEDLE_SCRIPT
    code, out, err = run_here(
        capsys, model_server, str(context_file), "--query", "What is the magic number?"
    )
    assert code == 0, err
    assert out == "4817\n"


# Prints on sys.stdout the way Ray's log thread does (looked up at print time): once during the
# run, once at exit after the answer. Both must end up on stderr.
NOISY_CLI = """
import atexit, sys
from rlm_ray import rlm
atexit.register(lambda: print("(raylet) WARNING: at exit"))
completion = rlm.RLM.completion
def noisy(self, *args, **kwargs):
    print("(raylet) WARNING: during the run")
    return completion(self, *args, **kwargs)
rlm.RLM.completion = noisy
from rlm_ray.cli import main
sys.argv[0] = "rlm-ray"
raise SystemExit(main())
"""


@pytest.mark.ray
def test_ray_log_lines_never_reach_stdout(model_server, context_file, address):
    model_server.reply = NEEDLE_SCRIPT
    argv = ["run", "--model", "openai/scripted", "--api-base", model_server.url]
    argv += ["--api-key", "k", "--context", str(context_file), "--query", "q"]
    out = run_python("-c", NOISY_CLI, *argv, "--address", address)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "4817\n"
    assert "WARNING: during the run" in out.stderr
    assert "WARNING: at exit" in out.stderr


@pytest.mark.ray
def test_json_output_and_trace_file(
    model_server, context_file, ray_session, tmp_path, capsys, monkeypatch
):
    model_server.reply = NEEDLE_SCRIPT
    trace = tmp_path / "trace.jsonl"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(context_file.read_bytes())))
    code, out, err = run_here(
        capsys,
        model_server,
        "-",
        *("--query", "What is the magic number?"),
        *("--json", "--trace", str(trace)),
        key="sk-secret-value",
    )
    assert code == 0, err
    data = json.loads(out)
    assert set(data) == {"answer", "usage", "timings"}
    assert data["answer"] == "4817" and data["usage"]["calls"] == 2
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    assert records[0]["depth"] == 0 and records[0]["iterations"][0]["cells"][0]["code"]
    assert "sk-secret-value" not in trace.read_text()


@pytest.mark.ray
def test_embedded_local_ray_starts_by_itself(model_server, context_file):
    model_server.reply = by_marker({}, default=turns(code("FINAL(len(context))")))
    out = run_scripted(model_server, str(context_file), "--query", "How long?")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(len(context_file.read_text()))


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "no-such-model-xyz"], "unknown model"),
        (["--model", "openai/x", "--max-depth", "-2"], "`max_depth` must be >= 0"),
    ],
)
def test_bad_arguments_give_one_line_errors(context_file, args, message, capsys):
    # in this process (a child process's one-line errors: test_trace's bad trace files)
    code = main(["run", *args, "--context", str(context_file), "--query", "q"])
    out = capsys.readouterr()
    assert code == 1
    assert out.out == ""
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


def test_binary_and_missing_context_files(tmp_path):
    binary = tmp_path / "blob.bin"
    binary.write_bytes(b"\x00\x01\x02" * 100)
    out = run_cli("run", "--model", "openai/x", "--context", str(binary), "--query", "q")
    assert out.returncode == 1 and "looks binary" in out.stderr
    out = run_cli(
        "run", "--model", "openai/x", "--context", str(tmp_path / "nope.txt"), "--query", "q"
    )
    assert out.returncode == 1 and "no such file" in out.stderr


@pytest.mark.ray
def test_ingest_then_run_over_the_corpus(model_server, tmp_path, ray_session, capsys):
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(3):
        (docs / f"note{i}.md").write_text(f"note {i}: the code is {i * 7}")
    (docs / "image.png").write_bytes(b"\x89PNG\x00\x00" * 50)
    (docs / "blob.txt").write_bytes(b"\x00\x01binary")
    corpus = tmp_path / "corpus.parquet"
    out = run_cli("ingest", str(docs), "--out", str(corpus))
    assert out.returncode == 0, out.stderr
    assert "3 documents" in out.stderr and "1 binary skipped" in out.stderr
    assert out.stdout == ""
    # `run` in this process (the session's Ray); `ingest` above as the command
    model_server.reply = turns(code("FINAL(f'{len(context.documents)} ' + context.documents[2])"))
    code_, out_, err = run_here(capsys, model_server, str(corpus), "--query", "How many?")
    assert code_ == 0, err
    assert out_ == "3 note 2: the code is 14\n"
    # a directory is a corpus too, cut as asked
    model_server.reply = turns(code("FINAL(f'{type(context)} {len(context.chunks())}')"))
    code_, out_, err = run_here(
        capsys,
        model_server,
        str(docs),
        *("--query", "q", "--chunk-by", "documents", "--chunk-size", "1"),
    )
    assert code_ == 0, err
    assert out_ == "<class 'Corpus'> 3\n"  # a stand-in: model code gets no runtime class


FANOUT_SCRIPT = by_marker(
    {"LEAF": "1"},
    default=turns(
        code("rs = [llm_query(f'LEAF {i}') for i in range(5)]\nprint(sum(int(r) for r in rs))"),
        lambda r: "FINAL(" + r.last_user.split("Output of code block 1:\n")[1].split()[0] + ")",
    ),
)


@pytest.mark.ray
def test_quiet_cache_then_progress_summary(model_server, context_file, address, tmp_path, capsys):
    model_server.reply = FANOUT_SCRIPT
    cache = str(tmp_path / "cache")
    args = ("--context", str(context_file), "--query", "q", "--cache", cache)
    out = run_scripted(model_server, *args[1:], "--address", address, "--quiet", "--json")
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""  # not even Ray's start-up lines
    usage = json.loads(out.stdout)["usage"]
    assert usage["calls"] == 7 and usage["cached_calls"] == 0

    # In this process (the session's Ray, warm): the cache answers every call, and the summary
    # (stderr is not a terminal: no live display) gives the counts per depth.
    model_server.reset_stats()
    base = ("run", "--model", "openai/scripted", "--api-base", model_server.url, "--api-key", "k")
    assert main([*base, *args]) == 0
    captured = capsys.readouterr()
    assert captured.out == "5\n" and model_server.request_count == 0
    assert captured.err.startswith(
        "rlm-ray: 7 model calls, 7 cached (depth 0: 1/1 RLM, 2/2 model; depth 1: 5/5 model); "
    )
    assert captured.err.count("\n") == 1 and "tokens in" in captured.err


def test_run_help_names_every_context_form_prompt_and_default(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for form in ("- (stdin)", ".json file (parsed)", "a directory", ".jsonl, .csv or .parquet"):
        assert form in text
    assert "prompt variant: paper, small, small-code" in text
    for default in ("(default: 1)", "(default: 20)", "(default: chars)", "(default: 200000)"):
        assert default in text


def test_a_mistyped_local_model_hears_of_the_local_names(context_file, capsys):
    code = main(["run", "--model", "local-typo", "--context", str(context_file), "--query", "q"])
    err = capsys.readouterr().err
    assert code == 1
    assert "'local'" in err and "'local-small'" in err, err


def test_the_readme_documents_every_exit_code():
    """The codes the command returns (rlm_ray/cli/run.py) are the ones the README's "Use"
    section states, each with what it means."""
    from pathlib import Path

    from rlm_ray import cli

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    use = readme.split("## Use", 1)[1].split("\n## ", 1)[0]
    stated = {
        cli.EXIT_ANSWER: "an answer",
        cli.EXIT_ERROR: "an error",
        cli.EXIT_USAGE: "a usage mistake",
        cli.EXIT_INTERRUPTED: "interrupted",
    }
    for number, meaning in stated.items():
        assert f"{number} {meaning}" in " ".join(use.split()), (number, meaning)
