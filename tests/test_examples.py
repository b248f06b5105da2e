"""The examples run offline, end to end, and get the right answer (they exit 1 otherwise)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import cli_env, run_python

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
def test_example_runs_offline(ray_session, script, args, truth):
    address = ray_session.get_runtime_context().gcs_address
    out = run_python(str(EXAMPLES / script), *args, timeout_s=300, env=cli_env(RAY_ADDRESS=address))
    assert out.returncode == 0, out.stderr[-2000:]
    expected = re.search(truth, out.stderr)
    assert expected, out.stderr[-2000:]
    assert out.stdout.strip() == expected.group(1)
