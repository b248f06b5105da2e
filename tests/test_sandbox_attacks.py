"""One test per escape attempt: each must fail, leak nothing, and leave the sandbox usable."""

from __future__ import annotations

import types

import pytest

from rlm_ray.sandbox import FinalAnswer, Sandbox


def final(value):
    raise FinalAnswer(value)


def llm_query(prompt):
    return f"reply to {prompt}"


ATTACKS = {
    # class-hierarchy and introspection walks
    "subclasses walk": "().__class__.__bases__[0].__subclasses__()",
    "list class": "[].__class__",
    "mro then subclasses": "str.mro()[-1].__subclasses__()",
    "object from mro": "base = ValueError.mro()[-1]\nbase.__subclasses__()",
    "fstring dunder": "f'{().__class__}'",
    "lambda globals": "(lambda: 0).__globals__",
    "injected function closure": "llm_query.__closure__",
    "injected function globals": "llm_query.__globals__",
    "function code": "def f():\n    pass\nf.__code__",
    "print self": "print.__self__",
    "print collector internals": "print._call_print",
    "generator frame": "(x for x in [1]).gi_frame",
    "generator code": "def g():\n    yield 1\ng().gi_code",
    "stdlib generator frame": "import heapq\nheapq.merge([1]).gi_frame",
    "exception traceback": "try:\n    1 / 0\nexcept Exception as e:\n    e.__traceback__",
    "exception context": "try:\n    1 / 0\nexcept Exception as e:\n    e.__context__",
    "traceback frame attribute": "try:\n    1 / 0\nexcept Exception as e:\n    e.tb_frame",
    "AttributeError.obj leak": "try:\n    llm_query.nope\nexcept AttributeError as e:\n    leaked = e.obj",
    "lru_cache wrapped": "import functools\nfunctools.lru_cache(len).__wrapped__",
    "pattern class": "import re\nre.compile('a').__class__",
    "builtins name": "builtins",
    "dunder builtins": "__builtins__",
    "guard by name": "_getattr_",
    "runtime helper by name": "_rlm_fanout_",
    # forbidden builtins
    "__import__": "__import__('os')",
    "getattr": "getattr((), '__class__')",
    "setattr": "setattr(llm_query, 'x', 1)",
    "open": "print(open('/etc/passwd').read())",
    "eval": "eval('1')",
    "exec": "exec('x = 1')",
    "compile": "compile('1', '', 'eval')",
    "globals": "globals()",
    "locals": "locals()",
    "vars": "vars()",
    "dir": "dir()",
    "breakpoint": "breakpoint()",
    "input": "input()",
    "help": "help()",
    "exit": "exit()",
    # imports
    "import os": "import os",
    "import sys": "import sys",
    "import subprocess": "import subprocess",
    "dotted import": "import os.path",
    "from os import": "from os import system",
    "relative import": "from . import sandbox",
    "submodule of json via from-import": "from json import decoder",
    "submodule of collections": "from collections import abc",
    "dunder via from-import": "from re import __builtins__",
    "re.enum": "import re\nre.enum",
    "json.codecs": "import json\njson.codecs",
    "re.sre_compile": "import re\nre.sre_compile",
    "datetime.sys": "import datetime\ndatetime.sys",
    "statistics internals": "import statistics\nstatistics.sys",
    "string.Formatter": "import string\nstring.Formatter",
    "string.Template": "import string\nstring.Template",
    # format-string attribute walks
    "str.format walk": "'{0.__class__}'.format(1)",
    "format_map walk": "'{x.__class__}'.format_map({'x': 1})",
    "str.format unbound": "str.format('{0.__class__}', 1)",
    "format spec": "format(1, '{0.__class__}')",
    # making classes and types
    "type with three arguments": "type('X', (), {})",
    "type of type": "type(type(1))('X', (), {})",
    "type through partial": "import functools\nfunctools.partial(type, 'X', (), {})()",
    "type through map": "list(map(type, ['X'], [()], [{}]))",
    "metaclass keyword": "class A(metaclass=type):\n    pass",
    "forbidden dunder method": "class A:\n    def __init_subclass__(cls):\n        pass",
    "function from its type": "type(llm_query)(1, 2)",
    # control-flow exceptions
    "raise SystemExit": "raise SystemExit",
    "raise KeyboardInterrupt": "raise KeyboardInterrupt",
    "except BaseException": "try:\n    1 / 0\nexcept BaseException:\n    pass",
    "except star": "try:\n    pass\nexcept* ValueError:\n    pass",
    "raise BaseException via mro": "raise ValueError.mro()[-2]('out')",
    "finally return": "def f():\n    try:\n        FINAL(1)\n    finally:\n        return 0\nf()",
    # code that would run outside the cell's time limit, when the host collects a generator
    "generator cleanup in finally": "def g():\n    try:\n        yield 1\n    finally:\n        while True:\n            pass",
    "generator catching its close": "def g():\n    try:\n        yield 1\n    except Exception.mro()[1]:\n        while True:\n            pass",
    # writes to things that are not ours
    "write to module proxy": "import json\njson.dumps = None",
    "delete from module proxy": "import json\ndel json.dumps",
    "augassign on module proxy": "import math\nmath.pi += 1",
    "write to injected function": "llm_query.x = 1",
    "write to function": "def f():\n    pass\nf.x = 1",
    "write to class": "class K:\n    pass\nK.x = 1",
    "write to builtin type": "int.x = 1",
    "mutate injected list": "context.append('x')",
    "assign into injected list": "context[0] = 'x'",
    # shadowing the guards
    "shadow _getattr_": "_getattr_ = lambda o, n: o",
    "positional-only shadow": "def f(_getattr_, /):\n    return _getattr_\nf(1)",
    "shadow via import alias": "import json as _getattr_",
    "shadow via loop target": "for _write_ in [1]:\n    pass",
    "shadow via global": "def f():\n    global _getiter_\n    _getiter_ = iter\nf()",
    "shadow via walrus": "(_getitem_ := 1)",
    "delete a guard": "del _getattr_",
    # internals of our own objects
    "future internals": "llm_query('x')._waiter",
    "async def": "async def f():\n    pass",
}

_LEAKY = (types.ModuleType, types.FrameType, types.CodeType, types.TracebackType)


def _leaks(namespace: dict) -> list[str]:
    found = []
    for name, value in namespace.items():
        if name.startswith("_"):
            continue
        items = list(value.values()) if isinstance(value, dict) else [value]
        if isinstance(value, (list, tuple, set)):
            items += list(value)
        found += [name for item in items if isinstance(item, _LEAKY) or item is type]
    return found


@pytest.fixture
def sandbox() -> Sandbox:
    sb = Sandbox(cell_timeout_s=5.0)
    sb.inject(llm_query=llm_query, FINAL=final, context=["chunk one", "chunk two"])
    return sb


@pytest.mark.parametrize("code", list(ATTACKS.values()), ids=list(ATTACKS))
def test_attack_fails_safely(sandbox, code):
    guards = {k: v for k, v in sandbox.namespace.items() if k.startswith("_")}
    builtins_before = dict(sandbox.namespace["__builtins__"])

    outcome = sandbox.run(code)

    assert outcome.error is not None or outcome.final == 1, outcome
    assert "root:" not in outcome.stdout
    assert _leaks(sandbox.namespace) == []
    assert sandbox.namespace["context"] == ["chunk one", "chunk two"]
    assert sandbox.namespace["llm_query"] is llm_query
    assert {k: v for k, v in sandbox.namespace.items() if k.startswith("_")} == guards
    assert sandbox.namespace["__builtins__"] == builtins_before
    # still usable, and the shared module proxies are intact
    follow_up = sandbox.run("import json\nprint(json.dumps([llm_query('hi')]), 1 + 1)")
    assert follow_up.error is None and follow_up.stdout == '["reply to hi"] 2\n'


def test_compile_time_rejections_name_the_problem(sandbox):
    error = sandbox.run("().__class__").error
    assert error.startswith("SyntaxError") and '"__class__" is an invalid attribute name' in error


def test_base_exception_raised_via_mro_is_reported_not_propagated(sandbox):
    outcome = sandbox.run("raise ValueError.mro()[-2]('out')")
    assert outcome.error.endswith("BaseException: out")


def test_imported_names_are_copies_of_the_allowlist(sandbox):
    outcome = sandbox.run("import re\nprint(re)\nprint(type(re.findall))")
    assert outcome.stdout.splitlines()[0] == "<module 're' (sandbox)>"
    assert "module" not in outcome.stdout.splitlines()[1]
