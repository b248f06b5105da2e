"""Tools sent to the workers: pickled once by the driver (`freeze`), unpickled once per process
(`thaw`), with Ray's cloudpickle (imported only when an `RLM` gets tools).
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any


def freeze(functions: Mapping[str, Callable[..., Any]]) -> bytes:
    """The functions pickled for the workers, with Ray's cloudpickle.

    subtle: the module a tool is defined in (a script, a notebook, a test module, a local
    project) is often not importable on a worker, so it is pickled by value: the function's code
    and the globals it uses travel with it. Modules of installed packages (site-packages, the
    standard library) are pickled by reference as usual: they are on every node.
    """
    from ray import cloudpickle  # only when an RLM gets tools

    modules = {getattr(fn, "__module__", None) for fn in functions.values()}
    local = [sys.modules[m] for m in modules if m in sys.modules and not _installed(sys.modules[m])]
    for module in local:
        cloudpickle.register_pickle_by_value(module)
    try:
        return cloudpickle.dumps(dict(functions))
    finally:
        for module in local:
            cloudpickle.unregister_pickle_by_value(module)


def _installed(module: Any) -> bool:
    path = getattr(module, "__file__", None)
    if module.__name__ == "__main__" or not path:
        return module.__name__ != "__main__"  # __main__ goes by value anyway; builtins: by ref
    parts = os.path.normpath(path).split(os.sep)
    stdlib = os.path.dirname(os.__file__)
    return "site-packages" in parts or "dist-packages" in parts or path.startswith(stdlib)


_THAWED: dict[bytes, dict[str, Callable[..., Any]]] = {}


def thaw(frozen: bytes) -> dict[str, Callable[..., Any]]:
    """The functions `freeze` pickled, unpickled once per process."""
    import pickle

    digest = hashlib.sha256(frozen).digest()
    if digest not in _THAWED:
        if len(_THAWED) > 32:
            _THAWED.clear()
        _THAWED[digest] = pickle.loads(frozen)
    return _THAWED[digest]
