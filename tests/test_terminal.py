"""Model-made text reaches the terminal without its control sequences (issue 25, item 4).

A FINAL with OSC 52 (write the clipboard), OSC 0 (the window title), clear-screen, conceal, an
8-bit CSI, a backspace and a carriage return: `rlm-ray run` printed it raw, `rlm-ray trace`
printed code, outputs and prompts raw (rich drops BEL and BS, not ESC). Each is shown as a
visible escape now; newlines and tabs stay, and `--json` keeps the exact text.
"""

from __future__ import annotations

import io
import json
import sys

import pytest
from helpers import cli_env, run_cli

from rlm_ray.cli import main
from rlm_ray.safety.terminal import json_text, printable
from rlm_ray.testing import by_marker, code, turns

# No CR and no quote: these go raw into a string literal of the model's code.
EVIL = (
    "\x1b]52;c;cHduZWQ=\x07"  # OSC 52: write "pwned" to the clipboard
    "\x1b]0;pwned\x07"  # OSC 0: the window title
    "\x1b[2J\x1b[H"  # clear the screen, cursor home
    "\x1b[8mhidden\x1b[0m"  # conceal
    "\x9b31m"  # CSI as one 8-bit C1 code
    "\x08\x7f\u202e"  # backspace, DEL, right-to-left override
)
ANSWER = "safe" + EVIL + "\tend\nline2\r!"
CONTROLS = [chr(c) for c in (*range(0, 9), *range(11, 32), *range(0x7F, 0xA0))] + ["\u202e"]

SCRIPT = by_marker(
    {"SUB": "sub reply " + EVIL},
    default=turns(
        code(
            f"print('out {EVIL}')\nx = llm_query('SUB {EVIL}')\nFINAL('safe{EVIL}\\tend\\nline2\\r!')"
        )
    ),
)


def _controls(text: str) -> list[str]:
    return sorted({repr(c) for c in text if c in CONTROLS})


def test_printable_writes_controls_as_escapes_and_keeps_newlines_and_tabs():
    assert printable("a\x1b[2Jb\tc\nd\re\x9bf\ud800") == "a\\x1b[2Jb\tc\nd\\x0de\\x9bf\\ud800"
    assert printable("plain ünïcödé ✓ text") == "plain ünïcödé ✓ text"


def test_json_text_is_exact_and_has_no_controls():
    text = json_text({"answer": ANSWER + "\ud800"})
    assert _controls(text) == []
    assert json.loads(text) == {"answer": ANSWER + "\ud800"}


@pytest.fixture(scope="module")
def ran(ray_session, _server, tmp_path_factory):
    """`rlm-ray run --trace` as a child process, on the session's Ray: (process, trace path)."""
    _server.reset()
    _server.reply = SCRIPT
    folder = tmp_path_factory.mktemp("terminal")
    context = folder / "ctx.txt"
    context.write_text("some context")
    trace = folder / "run.jsonl"
    argv = ["run", "--model", "openai/scripted", "--api-base", _server.url, "--api-key", "k"]
    argv += ["--context", str(context), "--query", "q", "--trace", str(trace)]
    address = ray_session.get_runtime_context().gcs_address
    yield run_cli(*argv, "--address", address), trace
    _server.reset()


@pytest.mark.ray
def test_run_prints_the_answer_without_its_control_sequences(ran):
    done, _ = ran
    assert done.returncode == 0, done.stderr
    assert _controls(done.stdout) == [] and _controls(done.stderr) == []
    assert done.stdout.startswith("safe\\x1b]52;c;cHduZWQ=\\x07\\x1b]0;pwned\\x07\\x1b[2J")
    assert done.stdout.endswith("\tend\nline2\\x0d!\n")  # tab and newline kept


@pytest.mark.ray
def test_trace_prints_code_outputs_and_prompts_without_control_sequences(ran):
    done, trace = ran
    assert done.returncode == 0, done.stderr
    shown = run_cli("trace", str(trace), env=cli_env(COLUMNS="1000"))  # rich wraps at 80
    assert shown.returncode == 0, shown.stderr
    assert _controls(shown.stdout) == [] and _controls(shown.stderr) == []
    for text in ("print('out \\x1b]52;c;", "output: out \\x1b]52", "prompt: SUB \\x1b]52"):
        assert text in shown.stdout, shown.stdout


def _main(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code_ = main(list(argv))
    out = capsys.readouterr()
    return code_, out.out, out.err


@pytest.mark.ray
def test_json_keeps_the_exact_answer(model_server, ray_session, tmp_path, capsys):
    model_server.reply = SCRIPT
    context = tmp_path / "ctx.txt"
    context.write_text("some context")
    base = ["run", "--model", "openai/scripted", "--api-base", model_server.url, "--api-key", "k"]
    status, out, err = _main(capsys, *base, "--context", str(context), "--query", "q", "--json")
    assert status == 0, err
    assert _controls(out) == []
    assert json.loads(out)["answer"] == ANSWER


@pytest.mark.ray
def test_chat_answers_and_a_partial_answer_on_stderr_are_neutralised(
    model_server, ray_session, tmp_path, capsys, monkeypatch
):
    model_server.reply = by_marker(
        {
            "SUB": "x",
            "STOPPED": turns(code(f"answer['content'] = 'partial {EVIL}'\nllm_query('SUB')")),
        },
        default=SCRIPT,
    )
    context = tmp_path / "ctx.txt"
    context.write_text("some context")
    monkeypatch.setattr(sys, "stdin", io.StringIO("q\n"))
    base = ["--model", "openai/scripted", "--api-base", model_server.url, "--api-key", "k"]
    status, out, err = _main(capsys, "chat", *base, "--context", str(context), "--quiet")
    assert status == 0, err
    assert _controls(out) == [] and out.startswith("safe\\x1b]52;c;")
    argv = ["run", *base, "--context", str(context), "--query", "STOPPED", "--max-sub-calls", "0"]
    status, out, err = _main(capsys, *argv, "--quiet")
    assert status == 1 and out == ""
    assert "rlm-ray: partial answer: partial \\x1b]52;c;" in err
    assert _controls(err) == []
