"""Shared fixtures: one local Ray for the session, one scripted model server on 127.0.0.1.

Nothing here reaches the internet: the model is `rlm_ray.testing.ScriptedServer`, reached through
litellm as a real OpenAI-compatible provider (`openai/...` + `api_base`).
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

import pytest

from rlm_ray.testing import ScriptedServer


def _unset(request):
    raise AssertionError("the test did not set `model_server.reply`")


def _start_session_ray() -> None:
    import ray

    if not ray.is_initialized():
        ray.init(
            address="local",  # never attach to another cluster running on this machine
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            object_store_memory=300 * 2**20,
            runtime_env={"env_vars": {"LITELLM_LOCAL_MODEL_COST_MAP": "True"}},
        )


@pytest.fixture(scope="session")
def ray_session():
    import ray

    _start_session_ray()
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def restore_session_ray():
    """For a module that needs its own Ray (a multi-node cluster): it shuts the session's down,
    then calls this on teardown so the tests after it find the session Ray as it was."""
    return _start_session_ray


@pytest.fixture(scope="session")
def _server():
    with ScriptedServer(_unset) as server:
        yield server


@pytest.fixture
def model_server(_server):
    """The session's scripted server, reset for this test: set `.reply` (and `.latency_s`)."""
    _server.reset()
    yield _server
    _server.reset()


@pytest.fixture
def make_rlm(ray_session, model_server):
    """Build an `RLM` pointed at the scripted server."""
    from rlm_ray import RLM

    def make(**kwargs):
        kwargs.setdefault("api_base", model_server.url)
        kwargs.setdefault("api_key", "sk-test")
        kwargs.setdefault("max_retries", 1)
        return RLM(kwargs.pop("model", "openai/scripted"), **kwargs)

    return make
