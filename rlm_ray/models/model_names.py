"""Model strings that can be accepted without importing litellm.

Importing litellm costs 2-6 s of CPU per process, more than everything else a driver does before
its first model turn; the gateways, which make the calls, import it anyway. So the driver checks
a "provider/name" string against the providers below and imports litellm only for anything else
(a bare name such as "gpt-4o-mini", a less common provider), to ask it as before.

Every provider here is one litellm resolves "provider/<any name>" to (a test asks litellm), so
this never accepts a string litellm would refuse.

`surely_unmapped(model)` reads litellm's bundled model map (the JSON file in its package, which
is what litellm loads with LITELLM_LOCAL_MODEL_COST_MAP=True) without importing litellm: a model
it holds no entry for has no price and no known window, so a gateway calling an unmapped model
on an OpenAI-compatible server (the lean path) never needs litellm at all.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os

PROVIDERS = frozenset(
    {
        "anthropic",
        "azure",
        "azure_ai",
        "bedrock",
        "cerebras",
        "cohere",
        "databricks",
        "deepinfra",
        "deepseek",
        "fireworks_ai",
        "gemini",
        "groq",
        "hosted_vllm",
        "huggingface",
        "litellm_proxy",
        "llamafile",
        "lm_studio",
        "mistral",
        "nvidia_nim",
        "ollama",
        "ollama_chat",
        "openai",
        "openrouter",
        "perplexity",
        "sambanova",
        "together_ai",
        "vertex_ai",
        "watsonx",
        "xai",
    }
)
"""litellm provider prefixes accepted as they are."""


def has_known_provider(model: str) -> bool:
    """Whether `model` is "provider/name" with a provider of `PROVIDERS` and a name."""
    provider, slash, name = model.partition("/")
    return bool(slash) and provider in PROVIDERS and bool(name.strip())


MODEL_MAP_FILE = "model_prices_and_context_window_backup.json"
"""litellm's bundled model map, in its package directory."""


@functools.cache
def _mapped_names() -> frozenset[str] | None:
    """The model map's keys, lower-cased (None if the file cannot be read, or litellm would
    fetch a newer map over the network instead: then nothing is surely unmapped, and litellm
    is asked)."""
    # unset, it is set to True before litellm's import (`llm._litellm`)
    if os.environ.get("LITELLM_LOCAL_MODEL_COST_MAP", "True").lower() != "true":
        return None
    spec = importlib.util.find_spec("litellm")  # finds the package; does not import it
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], MODEL_MAP_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            return frozenset(name.lower() for name in json.load(f))
    except (OSError, ValueError):
        return None


def surely_unmapped(model: str) -> bool:
    """Whether litellm's model map surely holds nothing for `model`: neither "provider/name" nor
    "name" (any case) is a key, and it is no fine-tuned model ("ft:...", priced from its base).
    When in doubt, False: litellm is asked (a test checks these against litellm)."""
    names = _mapped_names()
    if names is None:
        return False
    _, _, name = model.partition("/")
    candidates = {model.lower(), name.lower()} - {""}
    if any(c in names for c in candidates) or name.lower().startswith("ft:"):
        return False
    return True
