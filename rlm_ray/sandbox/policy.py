"""The policy a cell is compiled with: RestrictedPython's checks plus our rewrites.

It rewrites what models commonly write but RestrictedPython rejects (``d[k] += 1``,
``obj.x += 1``, bare ``except:``), shows a trailing expression's value, turns comprehensions whose
elements make sub-calls into parallel fan-out, and rejects the two constructs that would let model
code outlive its cell's time limit: leaving a ``finally`` block early, and ``yield`` inside
``try``. The AST work behind it is `rewrites` (free of RestrictedPython); the functions the
rewritten code calls are `guards` and the `Sandbox`'s runtime globals.
"""

from __future__ import annotations

import ast
import functools
from typing import Any, cast

from RestrictedPython.transformer import IOPERATOR_TO_STR, RestrictingNodeTransformer

from rlm_ray.sandbox.rewrites import (
    finally_escape,
    helper_call,
    located,
    plan_fanout,
    scope_nodes,
)


class Policy(RestrictingNodeTransformer):
    """RestrictedPython's checks, plus rewrites of common idioms and parallel fan-out."""

    fanout_names: frozenset[str] = frozenset()  # set per cell, see `policy_for`

    def visit_Module(self, node: ast.Module) -> Any:
        node = cast(ast.Module, super().visit_Module(node))
        last = node.body[-1] if node.body else None
        if isinstance(last, ast.Expr):  # notebook style: show a trailing expression's value
            last.value = helper_call("show", [last.value], last.value)
        return node

    def visit_AugAssign(self, node: ast.AugAssign) -> Any:
        if isinstance(node.target, ast.Name):
            return super().visit_AugAssign(node)
        # Visiting the Store target applies the usual checks and wraps its object in `_write_`;
        # the helper then reads, combines and stores, evaluating the object and key once.
        target = self.visit(node.target)
        op = ast.Constant(IOPERATOR_TO_STR[type(node.op)])
        value = self.visit(node.value)
        if isinstance(target, ast.Subscript):
            call = helper_call("aug_item", [target.value, target.slice, op, value], node)
        else:
            call = helper_call(
                "aug_attr", [target.value, ast.Constant(target.attr), op, value], node
            )
        return located(ast.Expr(call), node)

    def visit_Try(self, node: ast.Try) -> Any:
        escape = next(filter(None, map(finally_escape, node.finalbody)), None)
        if escape is not None:
            self.error(escape, "return/break/continue inside `finally` is not allowed.")
        # Closing a generator suspended inside `try` runs its handlers and `finally`, possibly
        # from the garbage collector after the cell ended: model code with no time limit.
        suspended = (n for n in scope_nodes(node) if isinstance(n, (ast.Yield, ast.YieldFrom)))
        if (found := next(suspended, None)) is not None:
            self.error(found, "`yield` inside `try` is not allowed.")
        node = cast(ast.Try, super().visit_Try(node))
        for handler in node.handlers:
            if handler.type is None:  # bare `except:` must not catch FINAL() or the timeout
                handler.type = located(ast.Name("_rlm_exception_", ast.Load()), handler)
        # Whatever the handlers name (even BaseException via .mro()), ours are re-raised first.
        if node.handlers:
            control = ast.ExceptHandler(ast.Name("_rlm_control_", ast.Load()), None, [ast.Raise()])
            node.handlers.insert(0, located(control, node.handlers[0]))
        return node

    def visit_ListComp(self, node: ast.ListComp) -> Any:
        return self._fan_out(node, "list") or super().visit_ListComp(node)

    def visit_SetComp(self, node: ast.SetComp) -> Any:
        return self._fan_out(node, "set") or super().visit_SetComp(node)

    def visit_DictComp(self, node: ast.DictComp) -> Any:
        return self._fan_out(node, "dict") or super().visit_DictComp(node)

    def visit_GeneratorExp(self, node: ast.GeneratorExp) -> Any:
        return self._fan_out(node, "gen") or super().visit_GeneratorExp(node)

    def _fan_out(self, node: Any, kind: str) -> ast.Call | None:
        plan = plan_fanout(node, kind, self.fanout_names) if self.fanout_names else None
        if plan is None:
            return None
        bindings, fn, filtered = plan
        args = [ast.Constant(kind), self.visit(bindings), self.visit(fn), ast.Constant(filtered)]
        return helper_call("fanout", args, node)


@functools.lru_cache(maxsize=32)
def policy_for(fanout_names: frozenset[str]) -> type[Policy]:
    # compile_restricted_exec instantiates the policy itself, so per-cell state rides on a class.
    return type("_CellPolicy", (Policy,), {"fanout_names": fanout_names})
