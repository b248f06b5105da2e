"""Reading replies: code blocks and FINAL forms written in text."""

import pytest

from rlm_ray.core.parsing import TextFinal, code_blocks, text_final, truncate


def test_repl_and_python_blocks_in_order():
    reply = "a\n```repl\nx = 1\n```\ntext\n```python\ny = 2\n```\n```js\nno()\n```"
    assert code_blocks(reply) == ["x = 1", "y = 2"]


def test_unclosed_last_block_still_runs():
    assert code_blocks("```repl\nprint(1)\n") == ["print(1)"]


@pytest.mark.parametrize(
    "reply, expected",
    [
        ("FINAL(42)", TextFinal("FINAL", "42")),
        ('I am done.\nFINAL("the answer")', TextFinal("FINAL", "the answer")),
        ("FINAL('x (y) z')", TextFinal("FINAL", "x (y) z")),
        ("FINAL(multi\nline)", TextFinal("FINAL", "multi\nline")),
        ("FINAL(42)\n\nI computed this (roughly).", TextFinal("FINAL", "42")),
        ("FINAL_VAR(result)", TextFinal("FINAL_VAR", "result")),
        ("  FINAL_VAR('result')", TextFinal("FINAL_VAR", "result")),
        ('FINAL_VAR("result")', TextFinal("FINAL_VAR", "result")),
        ("say FINAL(42) inline", None),
        ("```repl\nFINAL(1)\n```", None),
        ("no final here", None),
    ],
)
def test_text_final(reply, expected):
    assert text_final(reply) == expected


def test_truncate_keeps_head_and_tail():
    text = "A" * 1000 + "B" * 1000
    out = truncate(text, 300)
    assert out.startswith("A" * 100) and out.endswith("B" * 100)
    assert "characters truncated" in out and len(out) < 400
    assert truncate("short", 300) == "short"
