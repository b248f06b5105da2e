"""The REPL sandbox: model-written cells run under RestrictedPython, with limits.

sandbox.py        `Sandbox`: a persistent namespace that runs cells, putting the pieces together
policy.py         the policy cells compile with: RestrictedPython's checks plus our rewrites
guards.py         the guards the rewritten code calls (attributes, writes, in-place operators)
outcome.py        `CellOutcome`, what a cell produces, and `FinalAnswer`, raised by FINAL()
rewrites.py       the AST work behind the policy (sub-call sites, fan-out plans)
allowlist.py      the builtins table and the function-only proxies of allowlisted modules
future_guards.py  where model code waits for sub-call futures, and where it keeps them
fanout.py         parallel comprehensions on worker threads that join the running cell
clock.py          the per-cell time limit: watchdog, asynchronous exceptions, hard kill
kill_switch.py    a watcher process that ends a REPL whose C code starves the watchdog
output.py         what the model reads back: printed text, error text, SHOW_VARS lines
boundary.py       what may leave a cell: exact builtin data, views rebuilt, no cell classes
memory_cap.py     `limit_memory`, the REPL process's memory cap

This package re-exports `Sandbox`, what a cell produces and `limit_memory`; the pieces the
REPL and the backends use beside it (`boundary`, `allowlist`, `kill_switch`, `output`) are
imported by name.

Threat model
------------
Protected: code written by *our own* model, possibly steered by adversarial text in its context
(prompt injection), is kept from reaching the host. It gets no files, processes, network,
environment or interpreter internals: no `open`/`eval`/`exec`/`getattr`/`globals`, no names or
attributes starting with ``_`` (so no ``__class__``/``__subclasses__``/``__globals__`` walks), no
frame or code objects, no ``str.format`` attribute walks, and imports only of a few allowlisted
modules, each exposed as a proxy holding listed functions, classes and constants, never a module
object. It cannot read other calls' namespaces (each `Sandbox` has its own globals and
builtins) or the runtime's internals (injected objects are read-only, their private state is
behind ``_`` names, and the guard functions cannot be rebound). FINAL() and the cell timeout
are `BaseException`s that model code cannot catch or swallow.

Guaranteed at the cell's boundary (see `rlm_ray.sandbox.boundary`):
* Only exact builtin data leaves a cell: sub-call prompts, model names, child contexts and
  operator items are copied by `boundary.plain` (``type(x) is ...`` checks, bounded size and
  depth, corpus views rebuilt from their fields); answers leave as exact ``str``. A class the
  model defines — say a ``str`` subclass whose ``split`` would run in the gateway when litellm
  reads the model name — is a clear error in the cell.
* Classes and functions defined in a cell cannot be pickled at all (their module refuses to be
  looked into), so Ray never ships one to be rebuilt elsewhere with the real builtins; model
  exceptions leave the REPL only as text.
* Host code that must touch model-made values — reading `answer`, a FINAL_VAR named in the reply,
  the text of an error, settling futures — runs inside the cell's clock (`Sandbox.run`'s
  `after`, `Sandbox.evaluate`), so a method the model overrode is time-limited like the cell.
* ``type()`` and ``.mro()`` hand out no class of the runtime (a `HostClass` stand-in instead), and
  a corpus view refuses a source that is not the runtime's.
* A cell whose C code holds the GIL (a catastrophic regex in a fan-out thread) starves every
  in-process stop; a watcher process outside the REPL (`kill_switch`) kills it a little after
  the grace period, and the runtime goes on in a new REPL from the call's checkpoint with the
  model told. A crash (a segfault from C recursion) ends the same way.
* A sub-call's `model=` names one of the models the user configured (`model`, `sub_model`,
  `RLM(models=[...])`), or the cell gets an error naming them: litellm takes a provider's key
  from the environment for any model string (`groq/...` reads GROQ_API_KEY) and would send it
  to the run's `api_base`. The gateway refuses any other model again (defence in depth), before
  litellm or a socket sees the request.
* Credentials the gateway process could read are masked (`safety/redact.py`): the configured key and
  secret-named arguments, and every credential variable of the environment (`*_API_KEY`,
  `*_TOKEN`, `*SECRET*`, AWS/Azure/GCP ones), in model-call errors, in a cell's output and
  error before the model reads them, and in the trace.
* A prompt whose text (corpus slices counted by their offsets) is longer than its model's
  window allows is refused before it is made: in the cell, and again in the gateway before any
  slice is read, so `llm_query([context] * 2000)` costs the gateway nothing.
* Model-made text printed by the CLI (answers, errors, the trace's code, outputs and prompts)
  has its control characters written as escapes (`rlm_ray/safety/terminal.py`): no escape sequence
  of the model's reaches the user's terminal; `--json` stays exact, JSON-escaped.
* A tool host authorizes a call by the registered function's own ``@tool`` mark: the effects a
  REPL's message names count for nothing, so a ``write`` tool sent as ``"read"`` still needs
  ``approve`` or ``allow_effects``. It runs tools on at most 256 threads, stuck ones included
  (`tooling/threads.py`): a tool past its time limit keeps its thread until it returns, and once all
  are held a new call fails without running.
* A session's REPL rebuilt after its process was lost answers the tool calls of the cells it
  re-runs from what they returned the first time (`session_repl.ToolReplay`): a tool never runs
  twice for one call of the model, and ``approve`` is asked once per real call. A cell whose
  child RLM called a tool is not re-run; its variables are reported lost.
* An answer longer than `max_answer_chars` (10 M characters by default) never leaves the REPL's
  process: a FINAL over it is an error in its cell, with no turn left the run stops with
  `LimitExceededError`; the driver refuses a longer one too, before it copies it.
* A saved program (`program.save`) writes every recorded string as a literal and escapes control
  characters and lone surrogates in its comments and docstring: no query or code keeps the
  script from parsing.
* Host code that reads model-made data outside any cell's clock does bounded work by
  construction: a child's context is measured, never printed, for its first turn
  (`rlm_ray.safety.measure`); routing reads a capped prefix of the query; a session's rebuild tells
  the kind of a variable by its type; trace files are searched in linear or capped work (a
  typed answer traced to code in the worker runs on a cell's clock: `answer_source`). No call
  outlives its parent: at the run's deadline, or when the parent ends, its children are
  cancelled and their REPL processes killed.

NOT protected, plainly:
* RestrictedPython is not a security boundary against a determined adversary. Its own README
  says it is "not a sandbox system or a secured environment", and it has had escapes (CVEs are
  listed in the research notes). Every object we expose widens the attack surface.
* CPU and memory exhaustion below the caps: a cell may burn its whole time limit (plus the
  grace period before the kill), and memory is capped per process (`limit_memory`), not per
  cell or per session; a model that keeps the memory it filled leaves later cells little.
* Side channels (timing, memory pressure) and anything the injected functions themselves allow,
  the caller's tools (`RLM(tools=...)`, rlm_ray/tools.py) above all: they run outside the
  sandbox with whatever rights the caller's code has; only plain data crosses to and from them,
  and a tool declared ``effects="write"`` runs only if the caller allowed it.
* Masking finds credentials by their exact text: one an endpoint returns transformed (split,
  encoded) is not masked, and the processes of a node (REPLs included) hold the provider keys
  of its environment, which an escape from the sandbox would read.
* A REPL process that escaped the sandbox holds a Ray client: the tool host still takes its
  word for the run's permission flag and approvals actor, and Ray does not stop it from calling
  any actor. The effects check and the bounds above guard the paths model code reaches through
  the REPL, not a compromised process.
* A session keeps its tool calls' full results in the driver's memory (and sends them with each
  question) for as long as it is open, so that a rebuild can answer from them.
* Objects nested inside injected values (e.g. dicts inside an injected list) are writable; the
  injected values themselves are guarded against their methods, unbound methods and the
  allowlisted in-place functions (``heapq``, ``bisect``), not against every C function.

For untrusted or multi-tenant use, run the REPL host in a container or gVisor sandbox with no
credentials and no network beyond the model gateway: what the sandbox guarantees is only as
strong as RestrictedPython and CPython underneath it.
"""

from rlm_ray.sandbox.clock import CellTimeout
from rlm_ray.sandbox.memory_cap import limit_memory
from rlm_ray.sandbox.outcome import NO_FINAL, CellOutcome, FinalAnswer
from rlm_ray.sandbox.sandbox import Sandbox, default_grace_s

__all__ = [
    "NO_FINAL",
    "CellOutcome",
    "CellTimeout",
    "FinalAnswer",
    "Sandbox",
    "default_grace_s",
    "limit_memory",
]
