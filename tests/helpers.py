"""Helpers shared by the test modules: waiting for a condition, running the `rlm-ray` command.

Test modules import them as `from helpers import ...` (pytest puts this directory on sys.path).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def wait_for(
    condition: Callable[[], T],
    timeout_s: float = 60.0,
    what: str | Callable[[], str] = "condition",
    interval_s: float = 0.1,
) -> T:
    """Poll `condition` until it returns something truthy, and return that; fail after
    `timeout_s` naming `what` (a callable is called then, to describe what was last seen)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            described = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout_s} s waiting for {described}")
        time.sleep(interval_s)


def cli_env(**extra: str) -> dict[str, str]:
    """This process's environment for a child process, without RAY_ADDRESS (a child attaches
    only where its arguments say) and with litellm's bundled cost map (offline)."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    return {**env, **extra}


def run_python(
    *args: str,
    stdin: str | None = None,
    timeout_s: float = 180.0,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """`python ARGS...` in a child process (`cli_env()` unless `env` is given), text captured."""
    return subprocess.run(
        [sys.executable, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=cli_env() if env is None else env,
    )


def run_cli(*args: str, **kwargs: Any) -> subprocess.CompletedProcess:
    """`rlm-ray ARGS...` (as `python -m rlm_ray`) in a child process; see `run_python`."""
    return run_python("-m", "rlm_ray", *args, **kwargs)


def start_cli(*args: str) -> subprocess.Popen:
    """`rlm-ray ARGS...` started in the background, stdout and stderr piped as text."""
    return subprocess.Popen(
        [sys.executable, "-m", "rlm_ray", *args],
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
