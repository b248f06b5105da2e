"""Keeping secrets out of traces and error messages.

The secrets of a run are its `api_key` and every litellm argument whose name says it is one
(`*key*`, `*token*`, `*secret*`, `*password*`, `*auth*`, `*credential*`), including such headers in
`headers` / `extra_headers`. `redact` replaces each occurrence of them by `***`. Errors are
scrubbed where they are made (`llm.py`), and the whole trace once more before it leaves `RLM`,
so a key a provider echoes into an error message, or one pasted into the context, stays out of
trace files.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"
_SECRET_NAME = re.compile(r"key|token|secret|passw|auth|credential|cookie", re.IGNORECASE)
_MIN_SECRET_CHARS = 4  # shorter values would mask ordinary text; no real key is that short


def secret_values(api_key: str | None, *kwargs: Mapping[str, Any]) -> list[str]:
    """The secret strings of a run, longest first (so no secret is masked only in part)."""
    found: set[str] = set()
    if api_key:
        found.add(api_key)
    for mapping in kwargs:
        _collect(mapping, found, inside_secret=False)
    for value in list(found):  # "Bearer sk-..." in a header: the token alone may be echoed
        scheme, _, token = value.partition(" ")
        if token and scheme.lower() in ("bearer", "basic", "token"):
            found.add(token)
    return sorted((v for v in found if len(v) >= _MIN_SECRET_CHARS), key=len, reverse=True)


def _collect(value: Any, found: set[str], *, inside_secret: bool) -> None:
    if isinstance(value, Mapping):
        for name, item in value.items():
            _collect(item, found, inside_secret=inside_secret or _is_secret_name(name))
    elif isinstance(value, (list, tuple)):
        for item in value:
            _collect(item, found, inside_secret=inside_secret)
    elif inside_secret and isinstance(value, str):
        found.add(value)


def _is_secret_name(name: Any) -> bool:
    return isinstance(name, str) and _SECRET_NAME.search(name) is not None


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact_tree(value: Any, secrets: list[str]) -> Any:
    """Mask secrets in every string of a dataclass tree (a `CallTrace`), in place; returns it."""
    if not secrets:
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            if isinstance(item, str):
                setattr(value, f.name, redact(item, secrets))
            else:
                redact_tree(item, secrets)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            value[i] = (
                redact(item, secrets) if isinstance(item, str) else redact_tree(item, secrets)
            )
    return value


def redact_error(exc: BaseException, secrets: list[str]) -> BaseException:
    """Mask secrets in an exception's message arguments, in place; returns it."""
    if secrets and any(isinstance(a, str) for a in exc.args):
        exc.args = tuple(redact(a, secrets) if isinstance(a, str) else a for a in exc.args)
    return exc
