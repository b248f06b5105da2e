"""`RunSettings`: everything an `RLM` (or an `rlm_ray.ops` call) was configured with, checked
before any Ray work. No Ray, and litellm only to ask about a model string it alone can judge.

    run_settings("openai/gpt-4o-mini", sub_model=..., api_base=..., tools=[...], max_time_s=60)

`RLM.__init__` and `rlm_ray.ops` build one; the driver's `runtime.run.Launcher` runs with it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from rlm_ray.config import ModelSettings, RLMConfig
from rlm_ray.errors import ConfigError
from rlm_ray.local.local_model import (
    DEFAULT_CTX_PER_SLOT,
    LOCAL_MODELS,
    check_xllamacpp,
    find_parts,
    is_local,
)
from rlm_ray.models import call_cache, llm, model_names
from rlm_ray.operators import approximate
from rlm_ray.progress import ProgressCallback
from rlm_ray.prompting import prompts
from rlm_ray.tools import ToolCall, ToolSettings, tool_settings

# Small local models: greedy decoding, and a cap on a runaway reply (~13 tokens/s on 2 cores).
LOCAL_DEFAULTS: dict[str, Any] = {"temperature": 0.0, "max_tokens": 1024}


@dataclass(frozen=True)
class RunSettings:
    """An RLM's settings, validated: its models, limits, Ray address, tools and callbacks."""

    models: ModelSettings
    config: RLMConfig
    address: str | None = None
    """A Ray cluster's address; None: RAY_ADDRESS, else a local Ray started on first use."""
    tools: ToolSettings | None = None
    tool_functions: Mapping[str, Callable[..., Any]] = field(default_factory=dict, repr=False)
    approve: Callable[[ToolCall], Any] | None = field(default=None, repr=False)
    on_progress: ProgressCallback | None = field(default=None, repr=False)


def run_settings(
    model: str,
    *,
    sub_model: str | None = None,
    api_base: str | None = None,
    api_key: str | None = None,
    llm_kwargs: Mapping[str, Any] | None = None,
    sub_llm_kwargs: Mapping[str, Any] | None = None,
    address: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    on_progress: ProgressCallback | None = None,
    prompt: str | None = None,
    tools: Iterable[Callable[..., Any]] | None = None,
    allow_effects: bool = False,
    approve: Callable[[ToolCall], Any] | None = None,
    models: Iterable[str] | None = None,
    **limits: Any,
) -> RunSettings:
    """Check every argument of `RLM(...)` (see its docstring) and return the settings; raises
    `ConfigError` naming the first mistake."""
    config = _config(**limits)
    tool_set, functions = tool_settings(tools, allow_effects, approve)
    if cache_dir is not None:
        config = dataclasses.replace(config, cache_dir=call_cache.check_cache_dir(cache_dir))
    if on_progress is not None and not callable(on_progress):
        raise ConfigError(f"`on_progress` must be callable, got {on_progress!r}")
    allowed = _allowed_models(models)
    for name in (model, sub_model, *allowed):
        if name is not None:
            _check_model(name, api_base)
    _check_api_base(api_base)
    _check_embedding_model(approximate.embedding_model(config.approximate), api_base)
    prompts.choose(model, prompt)  # an unknown prompt name fails here, not in a worker
    sub_model = sub_model or model
    model_settings = ModelSettings(
        model=model,
        sub_model=sub_model,
        api_base=api_base,
        api_key=api_key,
        llm_kwargs=_local_defaults(model, _kwargs("llm_kwargs", llm_kwargs)),
        sub_llm_kwargs=_local_defaults(sub_model, _kwargs("sub_llm_kwargs", sub_llm_kwargs)),
        prompt=prompt,
        allowed_models=allowed,
    )
    return RunSettings(model_settings, config, address, tool_set, functions, approve, on_progress)


def context_window(config: RLMConfig, model: str) -> int:
    """`model`'s context window in tokens: fixed by `config`, a local model's slot, or from
    litellm's model map (which this imports: a run asks a gateway instead, see `Launcher`)."""
    if config.context_window_tokens:
        return config.context_window_tokens
    return DEFAULT_CTX_PER_SLOT if is_local(model) else llm.context_window(model)


def _check_model(model: str, api_base: str | None) -> None:
    if not is_local(model):
        if not (isinstance(model, str) and model_names.has_known_provider(model)):
            try:
                llm.check_model(model)  # imports litellm (seconds) to ask it
            except ConfigError as exc:  # a typo of a local name must hear of the local names
                local = ", ".join(repr(name) for name in LOCAL_MODELS)
                raise ConfigError(f"{exc}; or one rlm-ray serves itself: {local}") from None
        return
    if api_base is not None:
        raise ConfigError(
            f"model {model!r} is served by rlm-ray itself: do not pass `api_base` "
            f"(got {api_base!r}); for your own server use 'openai/NAME' with `api_base`"
        )
    spec = LOCAL_MODELS[model]
    find_parts(spec)
    check_xllamacpp(spec)


def _check_embedding_model(model: str | None, api_base: str | None) -> None:
    """`approximate={"embedding_model": ...}`: a model litellm can place (the run's
    `api_base`, if any, serves it too); rlm-ray's own local models do not embed (their server
    runs without an embedding endpoint: docs/cascades.md, "Embeddings")."""
    if model is None:
        return
    if is_local(model):
        raise ConfigError(
            f"`approximate`: embedding_model {model!r} is one of rlm-ray's own local models, "
            "which serve no embeddings; use a hosted embedding model (e.g. "
            "'openai/text-embedding-3-small') or leave it out (the proxy uses n-grams)"
        )
    _check_model(model, api_base)


def _allowed_models(models: Iterable[str] | None) -> tuple[str, ...]:
    """`RLM(models=...)`: the further models model code may name, as a tuple."""
    if models is None:
        return ()
    if isinstance(models, str) or not isinstance(models, Iterable):
        raise ConfigError(f"`models` must be a list of model strings, got {models!r}")
    names = tuple(models)
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"`models` must hold model strings, got {name!r} in {names!r}")
    return names


def _local_defaults(model: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    return {**LOCAL_DEFAULTS, **kwargs} if is_local(model) else kwargs


def _config(**values: Any) -> RLMConfig:
    unknown = sorted(set(values) - set(RLMConfig.names()))
    if unknown:
        raise ConfigError(f"unknown setting(s) {unknown}; known limits: {RLMConfig.names()}")
    return RLMConfig(**values)


def _kwargs(name: str, value: Mapping[str, Any] | None) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"`{name}` must be a dict of litellm arguments, got {type(value).__name__}"
        )
    reserved = {"model", "messages", "api_base", "api_key"} & set(value)
    if reserved:
        raise ConfigError(f"`{name}` must not set {sorted(reserved)}: use the RLM arguments")
    return dict(value)


def _check_api_base(api_base: str | None) -> None:
    if api_base is None:
        return
    parsed = urlparse(api_base) if isinstance(api_base, str) else None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(f"`api_base` must be an http(s) URL, got {api_base!r}")
