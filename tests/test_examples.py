"""The examples run offline, end to end, and get the right answer (they exit 1 otherwise).

Each runs as `__main__` in this process, on the session's Ray: as a child process it would be a
new driver with a new pool (tens of seconds under load), which the CLI tests already cover.
"""

from __future__ import annotations

import re
import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

pytestmark = pytest.mark.ray


@pytest.mark.parametrize(
    "script, args, truth",
    [
        # each example states the right answer on stderr; its answer is the last line of stdout
        ("needle_haystack.py", ["--chars", "300000"], r"the needle is (\d+)"),
        ("fanout_aggregation.py", ["--reviews", "500"], r"truth: (\d+) positive"),
    ],
)
def test_example_runs_offline(ray_session, script, args, truth, capsys, monkeypatch):
    path = EXAMPLES / script
    monkeypatch.setattr(sys, "argv", [str(path), *args])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(path), run_name="__main__")
    out = capsys.readouterr()
    assert exit_.value.code == 0, out.err[-2000:]
    expected = re.search(truth, out.err)
    assert expected, out.err[-2000:]
    assert out.out.strip() == expected.group(1)
