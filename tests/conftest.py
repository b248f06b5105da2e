"""Shared fixtures: one local Ray for the session, one scripted model server on 127.0.0.1, and
one multi-node Ray (`shared_cluster`) for the modules that need several nodes.

Nothing here reaches the internet: the model is `rlm_ray.testing.ScriptedServer`, reached through
litellm as a real OpenAI-compatible provider (`openai/...` + `api_base`).
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

import pytest
from helpers import AWS_ENV, FAST_FAILURE_DETECTION, forget_runtimes, free_port

from rlm_ray.testing import ScriptedServer

CLUSTER_FIXTURE = "shared_cluster"


def pytest_collection_modifyitems(items):
    """The tests on the multi-node cluster run last, together (in their usual order): the
    cluster then starts once, after the session's local Ray, and nothing needs that Ray again."""
    items.sort(key=lambda item: CLUSTER_FIXTURE in item.fixturenames)  # stable


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
def shared_cluster():
    """A multi-node Ray on this machine (`ray.cluster_utils.Cluster`): a head and two worker
    raylets, one CPU and a resource naming it each, the test S3 credentials in every node's
    environment. It replaces the session's local Ray (its tests run last: see
    `pytest_collection_modifyitems`); a test that removes a node adds one back."""
    import ray
    from ray.cluster_utils import Cluster

    # subtle: cached runtimes hold actor handles of the Ray about to stop; released after it
    # stopped, they crash the next Ray's core worker ("Cannot find an actor handle").
    forget_runtimes()
    ray.shutdown()  # the session's local Ray, if a test before started it
    env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", **AWS_ENV}
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 1,
            "resources": {"rlm_node_head": 1},
            "object_store_memory": 150 * 2**20,
            "include_dashboard": True,  # the state API (list_actors, list_objects) needs it
            "dashboard_port": free_port(),  # never 8265: another Ray on this host may hold it
            "_system_config": FAST_FAILURE_DETECTION,
            "env_vars": env,
        },
    )
    try:
        for i in (1, 2):
            cluster.add_node(
                num_cpus=1,
                resources={f"rlm_node_w{i}": 1},
                object_store_memory=150 * 2**20,
                env_vars=env,
            )
        cluster.wait_for_nodes()
        litellm_env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True"}  # no credentials in a runtime_env
        ray.init(
            address=cluster.address, log_to_driver=False, runtime_env={"env_vars": litellm_env}
        )
        yield cluster
    finally:
        forget_runtimes()
        ray.shutdown()
        cluster.shutdown()


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
