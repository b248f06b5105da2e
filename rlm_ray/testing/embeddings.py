"""The scripted server's `POST /v1/embeddings` (OpenAI-compatible): deterministic vectors, a
hashed bag of each input's words, so a proxy trained on them learns what the words say.
Standard library only."""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any

DIMENSIONS = 64
_WORD = re.compile(r"\w+")


def vector(text: str, dimensions: int = DIMENSIONS) -> list[float]:
    """`text`'s words hashed into `dimensions` buckets, counted, L2-normalised."""
    counts = [0.0] * dimensions
    for word in _WORD.findall(text.lower()):
        bucket = int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "big") % dimensions
        counts[bucket] += 1.0
    norm = math.sqrt(sum(c * c for c in counts)) or 1.0
    return [c / norm for c in counts]


def answer(raw: bytes) -> tuple[int, dict[str, Any], str, int]:
    """(status, body, model, inputs) for an embeddings request's body."""
    try:
        request = json.loads(raw)
        inputs = request["input"]
        inputs = [inputs] if isinstance(inputs, str) else list(inputs)
        model = str(request.get("model", ""))
    except (ValueError, KeyError, TypeError) as exc:
        return 400, {"error": {"message": f"bad embeddings request: {exc}"}}, "", 0
    data = [
        {"object": "embedding", "index": i, "embedding": vector(str(text))}
        for i, text in enumerate(inputs)
    ]
    tokens = sum(len(_WORD.findall(str(text))) for text in inputs)
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    body = {"object": "list", "data": data, "model": model, "usage": usage}
    return 200, body, model, len(inputs)
