"""Tools with declared trust: plain Python functions the model calls from its REPL.

    @rlm_ray.tool(effects="read")
    def lookup_price(sku: str) -> float:
        "The price of one SKU, from the catalogue."
        ...

    RLM(model, tools=[lookup_price, send_email], approve=lambda call: call.name != "send_email")

A tool declares what it may do: ``effects="none"`` (computes only), ``"read"`` (reads outside
data: files, network, databases) or ``"write"`` (changes something outside). ``none`` and
``read`` tools run whenever the model calls them; a ``write`` tool runs only when the caller
allowed it: ``RLM(..., approve=fn)`` asks ``fn(call)`` on the driver for each write call (only
``True`` approves), else ``RLM(..., allow_effects=True)`` lets every write call run, else it is
refused. A refused call is an error inside the model's code; the run goes on.

`gate.authorize` is the one gate every tool call goes through, right before the function runs
(`gate.run_tool`): a replay of a run's cells goes through it too, with the replay's own
settings, so a ``write`` tool never runs again unless it is allowed again. The gate reads a
call's effects from the registered function's own mark, never from the message the REPL sent. A session whose
REPL is rebuilt answers the tool calls of the cells it re-runs from their recorded outcomes
(`core/session_repl.py`): a rebuild runs no tool and asks no `approve` again.

Tool calls run on threads of their own (`tooling/threads.py`): at most a fixed number per
process, stuck ones included. This module declares tools and checks them (`tool`,
`tool_settings`); how they travel, are gated and shown is `rlm_ray/tooling/`: `pickling`
(`freeze`, `thaw`), `gate` (`authorize`, `run_tool`, `replay_settings`) and `shown` (the
prompt's paragraph, trace previews).

Tools run outside the sandbox, on tool-host actors (`rlm_ray/runtime/tool_host.py`), never in
the REPL's process: the REPL holds only each tool's `ToolSpec` (name, effects, signature,
doc). Only plain data crosses: the arguments are bound to the signature and copied with
`sandbox.boundary.plain` in the cell, the result is copied the same way where the tool ran.

No Ray here (the pickling check imports Ray's cloudpickle only when an `RLM` gets tools).
"""

from __future__ import annotations

import builtins
import dataclasses
import inspect
import keyword
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rlm_ray.errors import ConfigError
from rlm_ray.tooling.pickling import freeze

EFFECTS = ("none", "read", "write")
_MARK = "__rlm_tool__"
_DOC_CHARS = 600
DEFAULT_TIMEOUT_S = 60.0
"""How long a tool call may take unless its `@tool(timeout_s=...)` says otherwise."""

# Names a tool may not take: what the REPL already gives the model, its builtins and modules.
_REPL_NAMES = frozenset(
    "context llm_query llm_query_batched recursive_llm rlm_query rlm_query_batched llm_map "
    "llm_filter llm_classify llm_count FINAL FINAL_VAR SHOW_VARS answer SubCallError print".split()
)
_MODULES = frozenset(
    "re json math collections itertools functools statistics string textwrap datetime heapq "
    "bisect".split()
)


@dataclass(frozen=True)
class ToolMark:
    """What `@tool` records on a function."""

    effects: str
    name: str | None = None
    timeout_s: float | None = DEFAULT_TIMEOUT_S


def tool(
    fn: Callable[..., Any] | str | None = None,
    *,
    effects: str = "none",
    name: str | None = None,
    timeout_s: float | None = DEFAULT_TIMEOUT_S,
):
    """Mark a function as a tool the model may call: ``@tool(effects="none" | "read" |
    "write")``. Bare ``@tool`` means ``effects="none"``. `name`: the name the model calls it by
    (default: the function's ``__name__``). `timeout_s`: a call that has not returned by then
    is an error in the model's code (`None`: no limit but the run's `max_time_s`). Returns the
    function itself, marked. ``@tool("read")`` is ``@tool(effects="read")``."""
    if isinstance(fn, str):
        effects, fn = fn, None
    _check_effects(effects, "@tool")
    if name is not None:
        _check_name(name, "@tool(name=...)")
    if timeout_s is not None and (
        isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or timeout_s <= 0
    ):
        raise ConfigError(f"@tool: `timeout_s` must be a number of seconds > 0, got {timeout_s!r}")

    def mark(f: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(f):
            raise ConfigError(f"@tool must decorate a function, got {f!r}")
        try:
            setattr(f, _MARK, ToolMark(effects, name, timeout_s))
        except (AttributeError, TypeError):
            raise ConfigError(f"@tool cannot mark {f!r}: it takes no attributes") from None
        return f

    return mark if fn is None else mark(fn)


@dataclass(frozen=True)
class ToolSpec:
    """What the REPL and the prompt know of a tool: never the function itself."""

    name: str
    effects: str
    signature: str  # e.g. "(sku: str, limit: int = 10) -> float", for the prompt and errors
    doc: str
    params: inspect.Signature  # names and kinds only: no defaults or annotations (user objects)

    def describe(self) -> str:
        doc = f": {self.doc}" if self.doc else ""
        return f"- `{self.name}{self.signature}` (effects: {self.effects}){doc}"


@dataclass(frozen=True)
class ToolSettings:
    """A run's tools and who may let `write` tools run; carried by every call's `CallSpec`."""

    specs: tuple[ToolSpec, ...]
    allow_effects: bool = False
    ask: bool = False  # an `approve` callback decides write calls (it stays on the driver)
    functions_ref: Any = None  # the object-store handle of `freeze(functions)`, set per run
    approvals: Any = None  # the actor that relays approvals to the driver, set per run
    hosts: tuple = ()  # the `ToolHost` actors that run the calls, set per run

    def spec(self, name: str) -> ToolSpec:
        return next(s for s in self.specs if s.name == name)


@dataclass(frozen=True)
class ToolCall:
    """One tool call, as `approve(call)` sees it: `name`, `effects` and `arguments` (parameter
    name -> value, as the model passed them; plain data). ``call["name"]`` works too."""

    name: str
    effects: str
    arguments: dict[str, Any]
    call_id: str = ""  # the RLM call whose code made it
    depth: int = 0

    def __getitem__(self, key: str) -> Any:
        if key not in {f.name for f in dataclasses.fields(self)}:
            raise KeyError(key)
        return getattr(self, key)


@dataclass
class ToolResult:
    """What a tool call came back with (across Ray): its value, or why it failed or was refused."""

    value: Any = None
    error: str | None = None  # "ValueError: no such SKU" (the tool raised), or a refusal
    ran: bool = False  # the function was called (it returned or raised)
    refused: bool = False  # `authorize` did not let it run
    decision: str = ""  # how it was authorized: "none", "read", "allow_effects", "approved"
    started_s: float = 0.0
    ended_s: float = 0.0
    node_id: str = ""
    actor_id: str = ""
    pid: int = 0


# -- validation: before any Ray work ------------------------------------------------------------
def tool_settings(
    tools: Iterable[Any] | None, allow_effects: Any, approve: Any
) -> tuple[ToolSettings | None, dict[str, Callable[..., Any]]]:
    """Check `RLM(tools=..., allow_effects=..., approve=...)`; returns the settings (None
    without tools) and the functions by name. Raises `ConfigError` on any mistake."""
    if not isinstance(allow_effects, bool):
        raise ConfigError(f"`allow_effects` must be True or False, got {allow_effects!r}")
    if approve is not None and not callable(approve):
        raise ConfigError(f"`approve` must be a function of the tool call, got {approve!r}")
    if tools is None:
        return None, {}
    if isinstance(tools, (str, bytes, Mapping)) or not isinstance(tools, Iterable):
        raise ConfigError(f"`tools` must be a list of functions, got {type(tools).__name__}")
    functions: dict[str, Callable[..., Any]] = {}
    specs = []
    for fn in tools:
        spec = _spec(fn)
        if spec.name in functions:
            raise ConfigError(f"two tools are named {spec.name!r}: tool names must be distinct")
        functions[spec.name] = fn
        specs.append(spec)
    if not specs:
        return None, {}
    _check_pickling(functions)
    # approve() is asked only about write calls: without write tools there is nothing to ask
    ask = approve is not None and any(s.effects == "write" for s in specs)
    return ToolSettings(tuple(specs), allow_effects, ask), functions


def _spec(fn: Any) -> ToolSpec:
    if not callable(fn) or isinstance(fn, type):
        raise ConfigError(f"a tool must be a function marked with @rlm_ray.tool, got {fn!r}")
    mark = declared_mark(fn)
    label = getattr(fn, "__name__", repr(fn))
    if mark is None:
        # subtle: unmarked functions are refused rather than taken as effects="none": a tool
        # that writes must not run without a declaration just because its author forgot one.
        raise ConfigError(
            f'tool {label!r} is not marked: decorate it with @rlm_ray.tool(effects="none"), '
            '"read" or "write" to declare what it may do'
        )
    name = mark.name or label
    _check_name(name, f"tool {label!r}")
    try:
        real = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"tool {name!r}: its signature cannot be read ({exc})") from None
    doc = " ".join((inspect.getdoc(fn) or "").split())
    if len(doc) > _DOC_CHARS:
        doc = doc[: _DOC_CHARS - 3] + "..."
    return ToolSpec(name, mark.effects, _shown(real), doc, _bare(real))


def _shown(signature: inspect.Signature) -> str:
    """The signature as the model reads it: string annotations (``from __future__ import
    annotations``) shown as written, not quoted."""

    def unquote(annotation: Any) -> Any:
        return _Written(annotation) if isinstance(annotation, str) else annotation

    params = [p.replace(annotation=unquote(p.annotation)) for p in signature.parameters.values()]
    return str(
        signature.replace(parameters=params, return_annotation=unquote(signature.return_annotation))
    )


class _Written:
    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _bare(signature: inspect.Signature) -> inspect.Signature:
    """The signature with defaults and annotations replaced: it reaches the REPL, which must
    unpickle nothing of the user's (a default may be a client object)."""
    params = [
        p.replace(default=_HAS_DEFAULT if p.default is not p.empty else p.empty, annotation=p.empty)
        for p in signature.parameters.values()
    ]
    return inspect.Signature(params)


class _HasDefault:
    def __repr__(self) -> str:
        return "..."

    def __reduce__(self) -> str:
        return "_HAS_DEFAULT"


_HAS_DEFAULT = _HasDefault()


def _check_effects(effects: Any, where: str) -> None:
    if effects not in EFFECTS:
        raise ConfigError(f"{where}: `effects` must be one of {list(EFFECTS)}, got {effects!r}")


def _check_name(name: Any, where: str) -> None:
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise ConfigError(
            f"{where}: a tool needs a Python identifier as its name, got {name!r} "
            "(a lambda needs @rlm_ray.tool(name=...))"
        )
    if name.startswith("_"):
        raise ConfigError(f"{where}: tool names may not start with '_' (the REPL hides those)")
    if name in _REPL_NAMES or name in _MODULES or hasattr(builtins, name):
        raise ConfigError(
            f"{where}: the name {name!r} is taken in the REPL (a builtin, a module or one of "
            "llm_query, context, FINAL, ...): give the tool another name"
        )


def _check_pickling(functions: dict[str, Callable[..., Any]]) -> None:
    for name, fn in functions.items():
        try:
            freeze({name: fn})
        except Exception as exc:
            raise ConfigError(
                f"tool {name!r} cannot be sent to Ray workers: pickling it failed "
                f"({type(exc).__name__}: {exc}); keep what it uses at module level picklable"
            ) from None


# -- a call's arguments, a function's mark -----------------------------------------------------
def bind(spec: ToolSpec, args: tuple, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The arguments by parameter name, or a `TypeError` naming the tool and its signature."""
    try:
        bound = spec.params.bind(*args, **kwargs)
    except TypeError as exc:
        raise TypeError(f"{spec.name}{spec.signature}: {exc}") from None
    return dict(bound.arguments)


def declared_mark(fn: Any) -> ToolMark | None:
    """What `@tool` recorded on `fn`, or None if it is not marked."""
    mark = getattr(fn, _MARK, None)
    return mark if isinstance(mark, ToolMark) else None
