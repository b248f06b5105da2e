"""Pure AST analysis and rewrites behind the sandbox's policy; no RestrictedPython here.

`policy.Policy` (a RestrictedPython transformer) decides *when* to rewrite; this module holds
the tree work it delegates, so it can be read and tested without RestrictedPython:

* which functions of a cell make sub-calls (`subcall_functions`), so that a comprehension calling
  them can fan out;
* how such a comprehension splits into bindings and a per-element lambda (`plan_fanout`);
* the constructs that would let model code outlive its cell's time limit (`finally_escape`,
  `scope_nodes` for ``yield`` inside ``try``);
* calls to the ``_rlm_*_`` runtime helpers (`helper_call`).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from typing import Any


def helper_call(name: str, args: list[ast.expr], where: ast.AST) -> ast.Call:
    """A call to a runtime helper. Built after RestrictedPython's name checks, which would
    reject the ``_`` prefix; that prefix is also what keeps model code from reaching it."""
    call = ast.Call(func=ast.Name(f"_rlm_{name}_", ast.Load()), args=args, keywords=[])
    return located(call, where)


def located(node: Any, where: ast.AST) -> Any:
    ast.copy_location(node, where)
    return ast.fix_missing_locations(node)


def _calls_any(node: ast.AST, names: Iterable[str]) -> bool:
    return any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in names
        for n in ast.walk(node)
    )


def _runs_a_call(node: ast.AST, names: frozenset[str]) -> bool:
    """Whether evaluating `node` calls one of `names`; a lambda's body does not run yet."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in names:
        return True
    children = ast.iter_child_nodes(node)
    return any(_runs_a_call(c, names) for c in children if not isinstance(c, ast.Lambda))


def subcall_functions(tree: ast.Module, known: set[str]) -> set[str]:
    """`known` updated with this cell's defs: a function or lambda calling one of them joins."""
    defs: dict[str, ast.AST] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            defs[node.name] = node
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Lambda):
            defs.update((t.id, node.value) for t in node.targets if isinstance(t, ast.Name))
    calling = known - defs.keys()  # a redefinition is judged again
    grew = True
    while grew:  # fixed point: f calls g calls llm_query
        new = {name for name, fn in defs.items() if name not in calling and _calls_any(fn, calling)}
        calling |= new
        grew = bool(new)
    return calling


def _bound_names(generators: list[ast.comprehension]) -> list[str] | None:
    """Names bound by the comprehension's targets, or None if a target is not plain names."""
    names: list[str] = []
    for gen in generators:
        for n in ast.walk(gen.target):
            if not isinstance(n, (ast.Name, ast.Tuple, ast.List, ast.Starred, ast.expr_context)):
                return None  # `for obj.attr in ...`: rare, keep it sequential
            if isinstance(n, ast.Name) and n.id not in names:
                names.append(n.id)
    return names


def plan_fanout(
    node: Any, kind: str, names: frozenset[str]
) -> tuple[ast.expr, ast.expr, bool] | None:
    """Split a comprehension into (bindings generator, per-element lambda, has deferred filters).

    ``[f(x) for x in xs if c(x) if llm_query(x)]`` becomes
    ``((x,) for x in xs if c(x))`` and ``lambda x: (True, f(x)) if llm_query(x) else (False, None)``.
    Loop variables reach the lambda as arguments, so each element sees its own values.
    """
    last = node.generators[-1]
    elts = [node.key, node.value] if kind == "dict" else [node.elt]
    split = next((i for i, test in enumerate(last.ifs) if _runs_a_call(test, names)), None)
    if split is None and not any(_runs_a_call(e, names) for e in elts):
        return None
    deferred = last.ifs[split:] if split is not None else []
    bound = _bound_names(node.generators)
    if bound is None or any(
        isinstance(n, ast.NamedExpr) for e in elts + deferred for n in ast.walk(e)
    ):
        return None  # walrus binds in the enclosing scope: a lambda would change its meaning
    inline = ast.comprehension(last.target, last.iter, last.ifs[: len(last.ifs) - len(deferred)], 0)
    elt = ast.Tuple([ast.Name(n, ast.Load()) for n in bound], ast.Load())
    bindings = ast.GeneratorExp(elt, [*node.generators[:-1], inline])
    body = ast.Tuple([node.key, node.value], ast.Load()) if kind == "dict" else node.elt
    if deferred:
        test = deferred[0] if len(deferred) == 1 else ast.BoolOp(ast.And(), deferred)
        keep = ast.Tuple([ast.Constant(True), body], ast.Load())
        body = ast.IfExp(
            test, keep, ast.Tuple([ast.Constant(False), ast.Constant(None)], ast.Load())
        )
    params = ast.arguments([], [ast.arg(n) for n in bound], None, [], [], None, [])
    return located(bindings, node), located(ast.Lambda(params, body), node), bool(deferred)


def finally_escape(node: ast.AST, in_loop: bool = False) -> ast.AST | None:
    """A return/break/continue leaving a ``finally`` block: it would discard FINAL() or the
    timeout in flight, letting ``try: <spin> finally: return`` run forever."""
    if isinstance(node, ast.Return) or (
        not in_loop and isinstance(node, (ast.Break, ast.Continue))
    ):
        return node
    loop_body = node.body if isinstance(node, (ast.For, ast.While)) else []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        # break/continue in a loop's body stay inside; in its `else:` they target an outer loop
        found = finally_escape(child, in_loop or any(child is b for b in loop_body))
        if found is not None:
            return found
    return None


def scope_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """`node` and its descendants in the same function scope."""
    yield node
    for child in ast.iter_child_nodes(node):
        if not isinstance(child, (ast.FunctionDef, ast.Lambda, ast.ClassDef)):
            yield from scope_nodes(child)


def literal_rebinding(tree: ast.Module, names: Iterable[str]) -> str | None:
    """The first of `names` that `tree` assigns a value written out in the code (a constant, or
    a list, tuple, dict or set of them), if any.

    The injected names hold the run's input and the runtime's functions; a value typed into the
    code in their place is made-up data (a 1.5B model that failed on `context` wrote two records
    of its own into `context` and answered from them). Rebinding to a computed value is left
    alone: the name is restored after the cell anyway."""
    protected = set(names)
    for node in _module_level(tree):
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        hit = [t.id for t in targets if isinstance(t, ast.Name) and t.id in protected]
        if hit and _is_literal(value):
            return hit[0]
    return None


def _module_level(tree: ast.AST) -> Iterator[ast.AST]:
    """The nodes of `tree` outside function and class bodies (where a name is a local)."""
    for child in ast.iter_child_nodes(tree):
        yield child
        if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            yield from _module_level(child)


def _is_literal(node: ast.expr) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True
