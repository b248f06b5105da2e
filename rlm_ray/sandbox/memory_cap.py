"""The REPL process's memory cap (`limit_memory`), set once when a REPL host starts.

A per-process backstop, not a per-cell budget: past the cap, allocations in any cell raise
`MemoryError`, which the sandbox reports to the model as text (see `output.error_text`).
Linux only in practice: it reads the current data segment size from ``/proc/self/status``.
"""

from __future__ import annotations

import warnings

from rlm_ray.errors import ConfigError


def _vmdata_bytes() -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmData:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def limit_memory(max_mb: int) -> None:
    """Cap this process's data segment at its current size plus `max_mb` MiB.

    Past the cap, allocations raise MemoryError, which the cell reports. This is a per-process
    backstop, not a per-cell budget. RLIMIT_DATA rather than RLIMIT_AS: Ray workers map a large
    address space for the object store, so an address-space cap breaks them.
    """
    if max_mb <= 0:
        raise ConfigError(f"`max_mb` must be > 0, got {max_mb!r}")
    try:
        import resource
    except ImportError:
        resource = None  # type: ignore[assignment]
    used = _vmdata_bytes()
    if resource is None or used is None or not hasattr(resource, "RLIMIT_DATA"):
        warnings.warn(
            "limit_memory: not supported on this platform; no memory cap set",
            RuntimeWarning,
            stacklevel=2,
        )
        return
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    limit = used + max_mb * 1024 * 1024
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
