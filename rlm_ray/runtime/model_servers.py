"""Local model servers on Ray: one per node and model, for the length of a run.

driver: start_servers({"local"}, settings)  ──>  one ModelServer actor per alive node
                                                 (num_cpus=0, pinned to its node, not detached;
                                                  its child process is llama.cpp's server)
        <── {"local": {node_id: "http://127.0.0.1:PORT/v1", ...}}
gateway on node N: calls go to the server of node N (`LLMRequest.api_base_by_node`)
driver: stop_servers(...) when the run ends; if the driver dies, Ray ends its actors and each
        server process exits when its parent (the actor) is gone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.exceptions import RayTaskError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from rlm_ray.errors import RLMError
from rlm_ray.local.local_model import LOCAL_MODELS, LocalServer


@dataclass(frozen=True)
class ServerSettings:
    slots: int = 1
    threads: int = 2
    ctx_per_slot: int = 16_384


class ModelServer:
    """Owns one local model server process on its node."""

    def __init__(self, name: str, settings: ServerSettings) -> None:
        self._server = LocalServer(
            LOCAL_MODELS[name],
            slots=settings.slots,
            threads=settings.threads,
            ctx_per_slot=settings.ctx_per_slot,
        )

    def prepare(self) -> None:
        """The model file assembled and checked (once per machine: seconds), before `start`."""
        self._server.prepare()

    def start(self) -> str:
        self._server.start()
        return self._server.api_base

    def pid(self) -> int | None:
        return self._server.pid

    def warm_prefix(self, messages: list[dict]) -> str:
        return self._server.warm_prefix(messages)

    def stop(self) -> None:
        self._server.stop()


_RemoteServer: Any = ray.remote(ModelServer)


@dataclass
class Servers:
    """The servers of one run: `api_bases[model][node_id]`, and the actors to stop."""

    api_bases: dict[str, dict[str, str]]
    actors: list
    names: list[str] = field(default_factory=list)  # the model of each actor


def start_servers(
    names: set[str], settings: ServerSettings, stage: Callable[[str], None] | None = None
) -> Servers:
    """Start a server for each model in `names` on every alive node; wait until all answer.
    `stage` hears what it waits for: "assembling the model", then "loading the model server"."""
    nodes = [n["NodeID"] for n in ray.nodes() if n.get("Alive")]
    actors, keys = [], []
    for name in sorted(names):
        for node_id in nodes:
            actor = _RemoteServer.options(
                num_cpus=0,  # the server's own threads do the work, outside Ray's accounting
                max_restarts=0,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
            ).remote(name, settings)
            actors.append(actor)
            keys.append((name, node_id))
    servers = Servers({}, actors, [name for name, _ in keys])
    tell = stage or (lambda what: None)
    try:
        tell("assembling the model")
        ray.get([actor.prepare.remote() for actor in actors])
        tell("loading the model server")
        starts = [actor.start.remote() for actor in actors]
        for (name, node_id), api_base in zip(keys, ray.get(starts)):
            servers.api_bases.setdefault(name, {})[node_id] = api_base
    except RayTaskError as exc:
        stop_servers(servers)
        cause = exc.cause
        raise cause if isinstance(cause, RLMError) else exc from None
    except BaseException:
        stop_servers(servers)
        raise
    return servers


def warm_prefix(servers: Servers, name: str, messages: list[dict]) -> list[str]:
    """Have every server of model `name` hold `messages` read (`prompt_cache.py`): restored
    from a saved state, or read once and saved. What happened on each node; never raises."""
    warming = [
        a.warm_prefix.remote(messages) for a, n in zip(servers.actors, servers.names) if n == name
    ]
    try:
        return list(ray.get(warming))
    except Exception as exc:  # a lost server: the run reports it on its first call
        return [f"not saved: {type(exc).__name__}"]


def stop_servers(servers: Servers) -> None:
    """Stop every server of a run (best effort: a dead actor's server has already gone)."""
    stopping = [actor.stop.remote() for actor in servers.actors]
    try:
        ray.get(stopping, timeout=30)
    except Exception:
        pass
    for actor in servers.actors:
        ray.kill(actor)
    servers.actors.clear()
