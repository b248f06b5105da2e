"""Model strings that can be accepted without importing litellm.

Importing litellm costs 2-6 s of CPU per process, more than everything else a driver does before
its first model turn; the gateways, which make the calls, import it anyway. So the driver checks
a "provider/name" string against the providers below and imports litellm only for anything else
(a bare name such as "gpt-4o-mini", a less common provider), to ask it as before.

Every provider here is one litellm resolves "provider/<any name>" to (a test asks litellm), so
this never accepts a string litellm would refuse.
"""

from __future__ import annotations

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
