"""The examples run offline, end to end, and get the right answer (they exit 1 otherwise)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

pytestmark = pytest.mark.ray


@pytest.mark.parametrize(
    "script, args",
    [
        ("needle_haystack.py", ["--chars", "300000"]),
        ("fanout_aggregation.py", ["--reviews", "500"]),
    ],
)
def test_example_runs_offline(ray_session, script, args):
    env = {**os.environ, "RAY_ADDRESS": ray_session.get_runtime_context().gcs_address}
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() and "right" in out.stderr or "truth" in out.stderr
