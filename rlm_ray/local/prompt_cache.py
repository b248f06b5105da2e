"""The root's fixed prompt prefix, read by a local model server once per machine, not once a run.

A run with `model="local"` starts its own llama.cpp server (`model_servers.py`), so every run's
first root turn used to read the `small` prompt's system text and examples (~1,100 tokens,
~17-25 s on two cores) before its own turn. llama.cpp can save a slot's state (its tokens and
KV cache, 42 MB for this prefix) to a file and restore it in milliseconds. `warm` restores the saved state of a
prefix if there is one; else it has the server read the prefix once and saves the state. The
root's first request then shares that prefix, and the server reads only the rest.

    driver, before the root call:  model_servers.warm_prefix(servers, model, prefix)
      ──> ModelServer.warm_prefix (one per node) ──> LocalServer.warm_prefix ──> warm():
          POST /slots/0?action=restore                      (a file for this key), or
          POST /v1/chat/completions (prefix + "."), then POST /slots/0?action=save

Files: `<dir>/prefix-<key>.bin`, the key a hash of all the state depends on (model file, server
build, slot size, messages); the newest `KEEP` files stay. Only prefixes that hold nothing of a
run's context are warmed (`call.shared_prefix`): any other would be a new file every run.
Everything here is an optimisation: a failure is reported in the outcome, never raised.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

KEEP = 4  # saved prefixes per directory (a prompt version, its settings and model: one each)
PREFIX_GLOB = "prefix-*.bin"


def key(model_file: Path, server_build: str, ctx_per_slot: int, messages: list[dict]) -> str:
    """What a saved state depends on: it is valid only for the same model, build and slot size."""
    stat = model_file.stat()
    text = json.dumps(
        [model_file.name, stat.st_size, server_build, ctx_per_slot, messages], sort_keys=True
    )
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def warm(
    server_url: str,
    served_name: str,
    directory: Path,
    prefix_key: str,
    messages: list[dict],
    timeout_s: float = 300.0,
) -> str:
    """Put the state of `messages` into slot 0 of the server at `server_url` (no `/v1`), from
    `directory` if saved there, else by reading it once and saving it. Returns what happened:
    "restored", "saved", or "not saved: <why>"."""
    name = f"prefix-{prefix_key}.bin"
    path = directory / name
    if path.is_file():
        try:
            _post(f"{server_url}/slots/0?action=restore", {"filename": name}, timeout_s)
            os.utime(path)  # newest first when pruning
            return "restored"
        except (OSError, ValueError) as exc:  # a file this build cannot read: make a new one
            path.unlink(missing_ok=True)
            reason = f"restore failed ({_why(exc)})"
    else:
        reason = ""
    temp = directory / f"prefix-{prefix_key}.{os.getpid()}.tmp"
    try:
        tokens = _read(server_url, served_name, messages, timeout_s)
        saved = _post(f"{server_url}/slots/0?action=save", {"filename": temp.name}, timeout_s)
        if int(saved.get("n_saved", 0)) < tokens:  # the slot held something else: keep nothing
            temp.unlink(missing_ok=True)
            return f"not saved: the slot held {saved.get('n_saved')} tokens, the prefix {tokens}"
        os.replace(temp, path)  # atomic: a concurrent restore reads a whole file
        prune(directory)
    except (OSError, ValueError) as exc:
        with contextlib.suppress(OSError):
            temp.unlink(missing_ok=True)
        return f"not saved: {reason + '; ' if reason else ''}{_why(exc)}"
    return "saved"


def prune(directory: Path, keep: int = KEEP) -> None:
    """Delete all but the `keep` most recently used saved prefixes."""
    used = []
    for file in directory.glob(PREFIX_GLOB):
        try:
            used.append((file.stat().st_mtime, file))
        except FileNotFoundError:  # pruned by another run's server meanwhile
            pass
    for _, old in sorted(used, reverse=True)[keep:]:
        old.unlink(missing_ok=True)


def _read(server_url: str, served_name: str, messages: list[dict], timeout_s: float) -> int:
    """Have slot 0 read `messages` (and a one-character user turn); the tokens it now holds."""
    body = {
        "model": served_name,
        "messages": [*messages, {"role": "user", "content": "."}],
        "max_tokens": 1,
        "temperature": 0,
        "id_slot": 0,  # llama.cpp: this slot, the one saved next
    }
    reply = _post(f"{server_url}/v1/chat/completions", body, timeout_s)
    timings = reply.get("timings") or {}
    return int(timings.get("cache_n", 0)) + int(timings.get("prompt_n", 0))


def _post(url: str, body: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return json.loads(response.read())


def _why(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    return f"{type(exc).__name__}: {exc}"[:200]
