"""Keeping secrets out of traces, cell output and error messages.

The secrets of a run are its `api_key` and every litellm argument whose name says it is one
(`*key*`, `*token*`, `*secret*`, `*password*`, `*auth*`, `*credential*`), including such headers in
`headers` / `extra_headers`. A process's secrets (`process_secrets`) add every credential its
environment holds (`environment_secrets`: `*_API_KEY`, `*_TOKEN`, `*SECRET*`, `*PASSWORD*`,
`*CREDENTIALS*`, AWS/Azure/GCP credential variables): litellm reads those for a provider's model,
so an endpoint may echo one back. `redact` replaces each occurrence of them by `***`. Errors
are scrubbed where they are made (`llm.py`), a cell's output and error in the REPL before the
model reads them (`repl.py`), and the whole trace once more before it leaves `RLM`, so a key a
provider echoes into an error message, or one pasted into the context, stays out of trace files.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"
_SECRET_NAME = re.compile(r"key|token|secret|passw|auth|credential|cookie", re.IGNORECASE)
_MIN_SECRET_CHARS = 4  # shorter values would mask ordinary text; no real key is that short
# Environment variables that hold credentials, by the parts of their names (split at "_"):
# OPENAI_API_KEY, HF_TOKEN, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AZURE_CLIENT_SECRET,
# GOOGLE_APPLICATION_CREDENTIALS, WATSONX_APIKEY, PGPASSWORD. Not AUTH (GIT_AUTHOR_EMAIL,
# SSH_AUTH_SOCK) nor PWD (the working directory): those hold ordinary text.
_ENV_SECRET_PARTS = frozenset({"KEY", "APIKEY", "TOKEN", "SECRET", "PAT"})
_ENV_SECRET_WORDS = ("SECRET", "PASSWORD", "PASSWD", "CREDENTIAL")
_ENV_SECRET_ENDINGS = ("KEY", "TOKEN")
# subtle: an environment holds ordinary short values under such names (RAY_AUTH_MODE=token,
# TOKENIZERS_PARALLELISM=false): only values of this length, without spaces, are masked.
_MIN_ENV_SECRET_CHARS = 8


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


def environment_secrets(environ: Mapping[str, str] | None = None) -> list[str]:
    """The values of the credential variables in `environ` (default: this process's), which
    litellm may send for a provider's model, longest first."""
    environ = os.environ if environ is None else environ
    found = {
        value
        for name, value in environ.items()
        if _is_credential_variable(name)
        and len(value) >= _MIN_ENV_SECRET_CHARS
        and not any(c.isspace() for c in value)
    }
    return sorted(found, key=len, reverse=True)


def process_secrets(api_key: str | None, *kwargs: Mapping[str, Any]) -> list[str]:
    """Every secret this process could send: the run's own (`secret_values`) and the
    credentials of its environment (`environment_secrets`), longest first."""
    found = set(secret_values(api_key, *kwargs)) | set(environment_secrets())
    return sorted(found, key=len, reverse=True)


def _is_credential_variable(name: str) -> bool:
    upper = name.upper()
    if any(word in upper for word in _ENV_SECRET_WORDS) or upper.endswith(_ENV_SECRET_ENDINGS):
        return True
    return not _ENV_SECRET_PARTS.isdisjoint(upper.split("_"))


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
