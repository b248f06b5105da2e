"""Behaviour of `rlm_ray.sandbox`: idioms, output, errors, futures, fan-out, timeouts, memory.

No Ray: sub-calls are `SubCallFuture`s settled by `FakeCalls`, a waiter that sleeps inside
`sandbox.waiting()` like the runtime's waits on Ray refs do.
"""

from __future__ import annotations

import json
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from helpers import wait_for

from rlm_ray.core.futures import SubCallFuture
from rlm_ray.errors import ConfigError
from rlm_ray.sandbox import NO_FINAL, CellOutcome, FinalAnswer, Sandbox, limit_memory, memory_cap


def final(value):
    raise FinalAnswer(value, "FINAL")


def final_var(name):
    raise FinalAnswer(name, "FINAL_VAR")


class _Call:
    def __init__(self, prompt: str, delay_s: float) -> None:
        self.prompt = prompt
        self.start = time.monotonic()
        self.ready = self.start + delay_s


class FakeCalls:
    """An echoing `llm_query` whose replies take `delay_s`, as if computed elsewhere.

    Each call is "in flight" from its creation until its reply is ready; `peak` is the most
    calls in flight at once, `batches` the sizes of the waits the futures asked for.
    """

    def __init__(self, sandbox: Sandbox, delay_s: float = 0.2) -> None:
        self.sandbox, self.delay_s = sandbox, delay_s
        self.calls: list[_Call] = []
        self.batches: list[int] = []
        self._lock = threading.Lock()

    def llm_query(self, prompt: object) -> SubCallFuture:
        call = _Call(str(prompt), self.delay_s)
        with self._lock:
            self.calls.append(call)
        return SubCallFuture(call, self)

    def wait(self, futures: list[SubCallFuture]) -> None:
        self.batches.append(len(futures))
        with self.sandbox.waiting():
            time.sleep(max(0.0, max(f._handle.ready for f in futures) - time.monotonic()))
        for future in futures:
            future._settle(future._handle.prompt)

    @property
    def peak(self) -> int:
        edges = sorted([(c.start, 1) for c in self.calls] + [(c.ready, -1) for c in self.calls])
        running = best = 0
        for _, step in edges:
            running += step
            best = max(best, running)
        return best


def make(**kwargs) -> tuple[Sandbox, FakeCalls]:
    sb = Sandbox(**{"cell_timeout_s": 10.0, **kwargs})
    fake = FakeCalls(sb)
    sb.inject(llm_query=fake.llm_query, FINAL=final, FINAL_VAR=final_var, context="a b c\nd e")
    return sb, fake


def ok(sb: Sandbox, code: str) -> str:
    outcome = sb.run(textwrap.dedent(code))
    assert outcome.error is None, outcome.error
    return outcome.stdout


# -- model idioms ------------------------------------------------------------------------------

IDIOMS = {
    "subscript augassign": ("d = {'a': 1}\nd['a'] += 1\nd['a'] *= 5\nprint(d)", "{'a': 10}"),
    "attribute augassign": (
        "class P:\n    def __init__(self, x):\n        self.x = x\np = P(1)\np.x += 1\nprint(p.x)",
        "2",
    ),
    "augassign keeps in-place semantics": (
        "d = {'k': []}\nalias = d['k']\nd['k'] += [1]\nprint(alias)",
        "[1]",
    ),
    "slice augassign": ("xs = [1, 2, 3]\nxs[0:2] += [9]\nprint(xs)", "[1, 2, 9, 3]"),
    "comprehensions": (
        "print([x * x for x in range(4)], {x % 2 for x in range(4)}, {x: x for x in 'ab'})",
        "[0, 1, 4, 9] {0, 1} {'a': 'a', 'b': 'b'}",
    ),
    "fstrings": ("x = 'hi'\nn = 7\nprint(f'{x!r}|{n:>5}|{n:03d}|{n=}')", "'hi'|    7|007|n=7"),
    "percent formatting": ("print('%s-%05.1f' % ('a', 2.25))", "a-002.2"),
    "lambdas": ("f = lambda a, b=2: a * b\nprint(f(3), f(3, 3))", "6 9"),
    "try except finally": (
        "try:\n    1 / 0\nexcept ZeroDivisionError as e:\n    print('caught', e)\nfinally:\n    print('done')",
        "caught division by zero\ndone",
    ),
    "bare except catches errors": ("try:\n    [][1]\nexcept:\n    print('caught')", "caught"),
    "counter and defaultdict": (
        "from collections import Counter, defaultdict\nc = Counter('abca')\nc['z'] += 1\n"
        "g = defaultdict(list)\ng['k'].append(1)\ng['k'] += [2]\nprint(c.most_common(1), dict(g))",
        "[('a', 2)] {'k': [1, 2]}",
    ),
    "tuple unpacking in for": (
        "for i, (a, b) in enumerate([(1, 2), (3, 4)]):\n    print(i, a + b)",
        "0 3\n1 7",
    ),
    "while loop": ("n = 0\nwhile n < 5:\n    n += 1\nprint(n)", "5"),
    "print inside functions": (
        "def f(x):\n    print('in f', x)\n    return x\nf(1)\nprint('out')",
        "in f 1\nout",
    ),
    "sorted by value": (
        "d = {'a': 1, 'b': 3, 'c': 2}\nprint(sorted(d.items(), key=lambda kv: -kv[1]))",
        "[('b', 3), ('c', 2), ('a', 1)]",
    ),
    "re and json": (
        "import re, json\nprint(re.findall(r'\\d+', 'a1b22'), json.loads('{\"k\": [1]}')['k'])",
        "['1', '22'] [1]",
    ),
    "re flags and pattern objects": (
        "import re\np = re.compile('B', re.I)\nprint(p.search('abc').group(), re.sub('b', 'x', 'abb'))",
        "b axx",
    ),
    "join split slice": (
        "words = context.split()\nprint('\\n'.join(words[1:3]), context[:3])",
        "b\nc a b",
    ),
    "from import and alias": (
        "from collections import Counter\nimport json as j\nprint(j.dumps(Counter('aa')))",
        '{"a": 2}',
    ),
    "other modules": (
        "import math, itertools, functools, statistics, string, textwrap, datetime, heapq, bisect\n"
        "print(math.sqrt(16), list(itertools.islice(itertools.count(), 3)),"
        " functools.reduce(lambda a, b: a + b, [1, 2, 3]), statistics.mean([1, 2, 3]),"
        " string.capwords('a b'), textwrap.shorten('aaa bbb ccc', 9),"
        " datetime.date(2024, 1, 2).isoformat(), heapq.nsmallest(1, [3, 1]), bisect.bisect([1, 3], 2))",
        "4.0 [0, 1, 2] 6 2 A B aaa [...] 2024-01-02 [1] 1",
    ),
    "builtins": (
        "print(len(range(10**12)), list(zip('ab', (1, 2))), list(map(abs, [-1])), list(filter(None, [0, 2])),"
        " list(reversed('ab')), min(3, 1), max([1, 5]), sum([1, 2]), any([0, 1]), all([]),"
        " round(2.5), divmod(7, 2), pow(2, 5), chr(65), ord('A'), hex(255), tuple('ab'), frozenset())",
        "1000000000000 [('a', 1), ('b', 2)] [1] [2] ['b', 'a'] 1 5 3 True True 2 (3, 1) 32 A 65 0xff"
        " ('a', 'b') frozenset()",
    ),
    "type and isinstance": (
        "print(type(1) is int, type('x') == str, isinstance([], list))",
        "True True True",
    ),
    "small classes": (
        "class Box:\n    def __init__(self):\n        self.items = []\n    def add(self, x):\n"
        "        self.items.append(x)\n        return self\nprint(Box().add(1).add(2).items)",
        "[1, 2]",
    ),
    "generators and walrus": (
        "def gen(n):\n    for i in range(n):\n        yield i\nif (total := sum(gen(4))) > 5:\n    print(total)",
        "6",
    ),
    "exceptions defined in the repl": (
        "class Oops(ValueError):\n    pass\ntry:\n    raise Oops('no')\nexcept ValueError as e:\n    print(repr(e))",
        "Oops('no')",
    ),
    "format builtin": ("print(format(3.14159, '.2f'), format(5, '>3'))", "3.14   5"),
}


@pytest.mark.parametrize("code, expected", list(IDIOMS.values()), ids=list(IDIOMS))
def test_model_idioms(code, expected):
    sb, _ = make()
    assert ok(sb, code).rstrip("\n") == expected


def test_trailing_expression_is_shown_like_a_notebook():
    sb, _ = make()
    assert ok(sb, "len(context)") == "9\n"
    assert ok(sb, "x = 1\n'text'") == "'text'\n"
    assert ok(sb, "None") == ""
    assert ok(sb, "print('once')") == "once\n"
    assert ok(sb, "y = 2") == ""


def test_state_persists_between_cells():
    sb, _ = make()
    ok(sb, "def double(x):\n    return 2 * x\ntotal = 1")
    assert ok(sb, "total = double(total) + 1\ntotal") == "3\n"


def test_prints_from_threads_and_functions_share_one_stdout():
    sb, fake = make()
    out = ok(
        sb,
        "def shout(p):\n    r = llm_query(p)\n    print('got', r)\n    return r\nx = [shout(str(i)) for i in range(5)]",
    )
    assert sorted(out.splitlines()) == [f"got {i}" for i in range(5)]
    assert fake.peak == 5


# -- errors ------------------------------------------------------------------------------------


def test_runtime_error_points_into_the_cell():
    sb, _ = make()
    outcome = sb.run("a = 1\nprint('before')\nb = x + a\n")
    assert "line 3" in outcome.error
    assert "b = x + a" in outcome.error
    assert outcome.error.endswith("NameError: name 'x' is not defined")
    assert outcome.stdout == "before\n"
    assert outcome.final is NO_FINAL and not outcome.timed_out
    assert "sandbox.py" not in outcome.error  # no frames from the runtime


def test_error_inside_a_function_from_an_earlier_cell():
    sb, _ = make()
    ok(sb, "def f(x):\n    return x['missing']")
    error = sb.run("f({})").error
    assert "in f" in error and "return x['missing']" in error and "KeyError: 'missing'" in error


def test_syntax_and_policy_errors_are_text():
    sb, _ = make()
    assert "SyntaxError" in sb.run("x = (").error
    assert "'return' outside function" in sb.run("return 1").error
    error = sb.run("x.__class__").error
    assert error.startswith("SyntaxError") and "__class__" in error
    assert ok(sb, "1 + 1") == "2\n"


def test_missing_attribute_raises_instead_of_returning_none():
    sb, _ = make()
    assert "AttributeError" in sb.run("import json\njson.nope").error
    assert "AttributeError" in sb.run("'x'.nope").error


def test_deep_recursion_is_reported_briefly():
    sb, _ = make()
    error = sb.run("def f(n):\n    return f(n + 1)\nf(0)").error
    assert "RecursionError" in error and "more frames" in error and len(error) < 2000


def test_unknown_import_lists_the_allowed_modules():
    error = make()[0].run("import numpy").error
    assert "ImportError" in error and "numpy" in error and "collections" in error and "re" in error


# -- FINAL, injected names, variables ----------------------------------------------------------


def test_final_ends_the_cell_with_its_value():
    sb, _ = make()
    outcome = sb.run("print('working')\nFINAL('the answer')\nprint('never')")
    assert (outcome.final, outcome.final_kind, outcome.error) == ("the answer", "FINAL", None)
    assert outcome.stdout == "working\n"
    outcome = sb.run("result = 42\nFINAL_VAR('result')")
    assert (outcome.final, outcome.final_kind) == ("result", "FINAL_VAR")
    assert sb.run("x = 1").final is NO_FINAL


SWALLOWERS = {
    "bare except": "try:\n    {stmt}\nexcept:\n    pass",
    "except Exception": "try:\n    {stmt}\nexcept Exception:\n    pass",
    "BaseException via mro": "try:\n    {stmt}\nexcept Exception.mro()[1]:\n    pass",
    "tuple with BaseException": "try:\n    {stmt}\nexcept (ValueError, ValueError.mro()[-2]) as e:\n    pass",
    "in a function": "def f():\n    try:\n        {stmt}\n    except:\n        return 0\nf()",
}


@pytest.mark.parametrize("template", list(SWALLOWERS.values()), ids=list(SWALLOWERS))
def test_final_cannot_be_swallowed(template):
    outcome = make()[0].run(template.format(stmt="FINAL('kept')"))
    assert outcome.final == "kept" and outcome.error is None


def test_final_inside_a_fan_out_element():
    outcome = make()[0].run(
        "def g(p):\n    if p == '3':\n        FINAL(llm_query(p))\n    return p\n[g(str(i)) for i in range(8)]"
    )
    assert outcome.final == "3"


def test_leaving_a_finally_block_early_is_rejected():
    sb, _ = make()
    error = sb.run("def f():\n    try:\n        return 1\n    finally:\n        return 2").error
    assert "finally" in error
    ok(
        sb,
        "for i in range(2):\n    try:\n        pass\n    finally:\n        for j in range(2):\n            break",
    )


def test_injected_names_are_restored_and_read_only():
    sb, _ = make()
    sb.inject(items=["x"], config={"k": 1})
    ok(sb, "llm_query = print\ndel FINAL\ncontext = context.upper()")
    assert ok(sb, "print(context[:3], llm_query is print)") == "a b False\n"
    for code in [
        "items[0] = 'y'",
        "config['k'] = 2",
        "items.append('y')",
        "config.clear()",
        "llm_query.x = 1",
    ]:
        assert sb.run(code).error is not None, code
    assert sb.namespace["items"] == ["x"] and sb.namespace["config"] == {"k": 1}


@pytest.mark.parametrize(
    "code",
    [
        "context = 'a b c: the records I think are there'\nprint(context)",
        "context = ['2026-03-06 | user 1 | Please cancel my order']",
        "context: str = 'made up'",
        "records = context.split()\nif not records:\n    context = {'n': 1}",
        "for x in [1]:\n    llm_query = 'yes'",
    ],
)
def test_a_value_typed_into_the_code_cannot_replace_an_injected_name(code):
    sb, _ = make()
    outcome = sb.run(code)
    assert outcome.error is not None and "made-up data" in outcome.error, code
    assert outcome.stdout == ""  # refused before anything ran
    assert "own str (9 chars)" in outcome.error or "own function" in outcome.error
    assert ok(sb, "print(context[:3])") == "a b\n"
    # a local of the same name, or a computed value, is no made-up input
    assert ok(sb, "def f():\n    context = 'x'\n    return context\nprint(f())") == "x\n"


def test_injected_functions_print_into_the_cell():
    sb, _ = make()
    sb.inject(SHOW=lambda: sb.print("n:", sb.variables()["n"]))
    assert ok(sb, "n = 1\nSHOW()") == "n: int\n"


def test_variables_describes_user_names_only():
    sb, _ = make()
    ok(
        sb,
        "import re\nwords = context.split()\nn = 3\ndef f():\n    pass\nclass K:\n    pass\nk = K()",
    )
    assert sb.variables() == {  # `re` is there from the start: not the model's
        "words": "list (5 items)",
        "n": "int",
        "f": "function",
        "K": "class",
        "k": "K",
    }
    ok(sb, "json = 'mine'")
    assert sb.variables()["json"] == "str (4 chars)"


def test_common_modules_are_there_without_an_import():
    sb, _ = make()
    code = "c = collections.Counter(context.split())\nprint(c['a'], re.findall('d', context))"
    assert ok(sb, code) == "1 ['d']\n"
    assert ok(sb, "print(json.dumps([math.floor(2.5)]))") == "[2]\n"
    assert "os" not in sb.namespace and "itertools" not in sb.namespace


@pytest.mark.parametrize(
    "code, fix",
    [
        ("print(Counter('aab'))", "from collections import Counter"),
        ("print(heapq.nlargest(1, [3, 1]))", "import heapq"),
        ("print(defaultdict(int))", "from collections import defaultdict"),
    ],
)
def test_a_name_an_allowed_module_defines_gets_the_import_that_fixes_it(code, fix):
    sb, _ = make()
    error = sb.run(code).error
    assert "NameError" in error and f"Fix: put `{fix}` at the top of the block." in error
    assert "Fix:" not in sb.run("print(no_such_name)").error


def test_a_list_or_str_read_by_a_str_key_gets_how_to_read_it():
    sb, _ = make()
    error = sb.run("labels = ['a', 'b']\nprint(labels['a'])").error
    assert "TypeError: list indices must be integers or slices, not str" in error
    assert "Fix: a list is read by position (an int), not by a str." in error
    assert "collections.Counter(labels)" in error
    assert "Fix: this value is a str" in sb.run("print(context['x'])").error
    assert "Fix:" not in sb.run("print(len(3))").error  # other TypeErrors: no guess


def test_outcome_pickles_with_the_no_final_sentinel():
    outcome = make()[0].run("x = 1")
    assert pickle.loads(pickle.dumps(outcome)).final is NO_FINAL
    assert isinstance(outcome, CellOutcome) and outcome.duration_s >= 0


def test_configuration_is_checked():
    with pytest.raises(ConfigError, match="cell_timeout_s"):
        Sandbox(cell_timeout_s=0)
    with pytest.raises(ConfigError, match="max_workers"):
        Sandbox(max_workers=0)


# -- lazy futures ------------------------------------------------------------------------------


def test_futures_behave_like_their_text():
    sb, _ = make()
    code = """
    r = llm_query('Hello 12')
    print(isinstance(r, str), type(r) is str, len(r), r.upper(), r[-2:], int(r.split()[1]) + 1)
    print(f'<{r}>', r + '!', '!' + r, 'ell' in r, r == 'Hello 12', sorted([r, 'A'])[0])
    import re, json
    print(re.findall(r'\\d', r), json.loads(llm_query('[1, 2]')), '-'.join([r, llm_query('x')]))
    """
    assert ok(sb, code).splitlines() == [
        "True True 8 HELLO 12 12 13",
        "<Hello 12> Hello 12! !Hello 12 True True A",
        "['1', '2'] [1, 2] Hello 12-x",
    ]


def test_append_in_a_loop_keeps_calls_in_flight_and_join_waits_once():
    sb, fake = make()
    started = time.monotonic()
    out = ok(
        sb,
        "results = []\nfor i in range(20):\n    results.append(llm_query(str(i)))\nprint(len(results))\nprint(','.join(results))",
    )
    assert out == "20\n" + ",".join(map(str, range(20))) + "\n"
    assert fake.peak == 20 and fake.batches == [20]
    assert time.monotonic() - started < 1.0


def test_item_assignment_keeps_the_future():
    sb, fake = make()
    ok(sb, "d = {}\nd['k'] = llm_query('v')")
    assert type(sb.namespace["d"]["k"]) is SubCallFuture and fake.batches == []
    assert ok(sb, "print(d['k'])") == "v\n"


# -- parallel fan-out --------------------------------------------------------------------------


def test_fan_out_runs_blocking_elements_concurrently():
    sb, fake = make()
    started = time.monotonic()
    assert ok(sb, "[int(llm_query(str(i))) for i in range(32)]") == repr(list(range(32))) + "\n"
    assert time.monotonic() - started < 2.0  # sequential would take 32 x 0.2 s
    assert fake.peak == 32


FAN_OUTS = {
    "bare sub-call": ("ps = [str(i) for i in range(12)]\n[llm_query(p) for p in ps]", 12, None),
    "dict comprehension": (
        "{i: int(llm_query(str(i))) * 2 for i in range(10)}",
        10,
        {i: 2 * i for i in range(10)},
    ),
    "set comprehension": ("{int(llm_query(str(i))) % 3 for i in range(9)}", 9, {0, 1, 2}),
    "generator in sum": ("sum(int(llm_query(str(i))) for i in range(16))", 16, sum(range(16))),
    "sub-call in a filter": (
        "[x for x in range(12) if int(llm_query(str(x))) % 4 == 0]",
        12,
        [0, 4, 8],
    ),
    "lambda that calls": (
        "ask = lambda x: int(llm_query(x))\n[ask(str(i)) for i in range(10)]",
        10,
        list(range(10)),
    ),
    "nested loops": (
        "[int(llm_query(f'{a}{b}')) for a in range(1, 3) for b in range(4)]",
        8,
        [10, 11, 12, 13, 20, 21, 22, 23],
    ),
    "tuple targets": ("[k + llm_query(v) for k, v in [('a', 'x'), ('b', 'y')]]", 2, ["ax", "by"]),
}


@pytest.mark.parametrize("code, peak, expected", list(FAN_OUTS.values()), ids=list(FAN_OUTS))
def test_fan_out_shapes(code, peak, expected):
    sb, fake = make()
    out = ok(sb, code)
    assert fake.peak == peak
    if expected is not None:
        assert out == repr(expected) + "\n"


def test_fan_out_of_functions_defined_in_earlier_cells():
    sb, fake = make()
    ok(sb, "def classify(x):\n    return 'even' if int(llm_query(x)) % 2 == 0 else 'odd'")
    ok(sb, "def label(x):\n    return classify(x).upper()")  # transitively calls llm_query
    assert ok(sb, "[label(str(i)) for i in range(16)]") == repr(["EVEN", "ODD"] * 8) + "\n"
    assert fake.peak == 16


def test_only_functions_that_make_sub_calls_run_on_threads():
    sb, _ = make()
    sb.inject(thread=lambda: threading.current_thread().name)
    ok(sb, "def f(x):\n    llm_query(x)\n    return thread()")
    assert "rlm-fanout" in ok(sb, "[f(str(i)) for i in range(4)]")
    ok(sb, "def f(x):\n    return thread()")  # redefined without a sub-call
    assert "rlm-fanout" not in ok(sb, "[f(i) for i in range(4)]")


def test_fan_out_keeps_order_and_raises_the_earliest_failure():
    sb, fake = make()
    before = threading.active_count()
    outcome = sb.run("xs = ['0', '1', 'bad2', '3', 'bad4', '5']\n[int(llm_query(x)) for x in xs]")
    assert "'bad2'" in outcome.error and "'bad4'" not in outcome.error
    assert "line 2" in outcome.error
    assert all(c.ready <= time.monotonic() for c in fake.calls)  # in-flight elements finished
    assert threading.active_count() <= before  # another test's thread may end meanwhile


def test_fan_out_filters_without_sub_calls_stay_inline():
    sb, fake = make()
    assert (
        ok(sb, "[llm_query(str(x)) for x in range(10) if x % 2 == 0]")
        == "['0', '2', '4', '6', '8']\n"
    )
    assert sorted(c.prompt for c in fake.calls) == ["0", "2", "4", "6", "8"]


def test_fan_out_binds_each_element_to_its_own_loop_values():
    sb, _ = make()
    out = ok(sb, "[(i, llm_query(str(i))) for i in range(50)]")
    assert out == repr([(i, str(i)) for i in range(50)]) + "\n"


def test_fan_out_respects_max_workers_and_nests_without_deadlock():
    sb, fake = make(max_workers=4)
    assert ok(sb, "[int(llm_query(str(i))) for i in range(12)]") == repr(list(range(12))) + "\n"
    assert fake.peak == 4
    nested = "[[int(llm_query(f'{i}{j}')) for j in range(3)] for i in range(3)]"
    assert ok(sb, nested) == repr([[0, 1, 2], [10, 11, 12], [20, 21, 22]]) + "\n"


def test_generator_fan_out_stays_lazy_in_windows():
    sb, fake = make(max_workers=4)
    assert (
        ok(sb, "g = (int(llm_query(str(i))) for i in range(10))\nfirst = next(g)\nfirst") == "0\n"
    )
    assert len(fake.calls) == 4  # one window, not all ten
    assert ok(sb, "list(g)") == repr(list(range(1, 10))) + "\n"


# -- time limits -------------------------------------------------------------------------------


def timed(sb: Sandbox, code: str) -> tuple[CellOutcome, float]:
    started = time.monotonic()
    outcome = sb.run(code)
    return outcome, time.monotonic() - started


RUNAWAYS = {
    "busy loop": "while True:\n    pass",
    "loop swallowing errors": "while True:\n    try:\n        while True:\n            pass\n    except:\n        pass",
    "catastrophic regex": "import re\nre.match(r'(a+)+$', 'a' * 40 + 'b')",
    "huge power": "7 ** 10 ** 8",
    "inside fan-out workers": "def spin(x):\n    llm_query(x)\n    while True:\n        pass\n[spin(str(i)) for i in range(4)]",
}


@pytest.mark.parametrize("code", list(RUNAWAYS.values()), ids=list(RUNAWAYS))
def test_runaway_cells_are_stopped(code):
    sb, _ = make(cell_timeout_s=0.3)
    before = threading.active_count()
    outcome, took = timed(sb, "before = 1\n" + code)
    assert outcome.timed_out and 0.3 <= took < 1.5
    assert "0.3 s time limit" in outcome.error and "timed out" in outcome.error
    # the cell's threads end (a fan-out worker may still be unwinding its interruption)
    wait_for(
        lambda: threading.active_count() == before,
        10.0,
        lambda: f"{threading.active_count()} threads, {before} before",
    )
    assert ok(sb, "before + 1") == "2\n"  # state kept, next cell runs normally


def test_time_spent_waiting_for_sub_calls_does_not_count():
    sb, fake = make(cell_timeout_s=0.5)
    fake.delay_s = 1.0
    outcome, took = timed(sb, "print(llm_query('slow'))")
    assert outcome.error is None and outcome.stdout == "slow\n" and took >= 1.0
    outcome, _ = timed(sb, "[int(llm_query(str(i))) for i in range(3)]")  # waits in workers
    assert outcome.error is None


def test_timeout_off_the_main_thread():
    sb, _ = make(cell_timeout_s=0.3)
    outcomes: list[CellOutcome] = []
    worker = threading.Thread(target=lambda: outcomes.append(sb.run("while True:\n    pass")))
    worker.start()
    worker.join(5)
    assert outcomes and outcomes[0].timed_out


def test_hard_kill_when_a_cell_cannot_be_interrupted():
    kills: list[float] = []
    sb = Sandbox(
        cell_timeout_s=0.2, hard_kill=lambda: kills.append(time.monotonic()), hard_kill_grace_s=0.2
    )
    sb.inject(block=lambda: time.sleep(1.0))  # C sleep off the main thread: no signal reaches it
    outcomes: list[CellOutcome] = []
    worker = threading.Thread(target=lambda: outcomes.append(sb.run("block()")))
    started = time.monotonic()
    worker.start()
    worker.join(5)
    assert len(kills) == 1 and 0.35 < kills[0] - started < 0.9
    assert outcomes[0].timed_out


def test_signal_handler_restored_and_waiting_outside_a_cell_is_harmless():
    previous = signal.getsignal(signal.SIGALRM)
    sb, _ = make(cell_timeout_s=0.3)
    timed(sb, "while True:\n    pass")
    assert signal.getsignal(signal.SIGALRM) is previous
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    with sb.waiting():
        pass


# -- memory ------------------------------------------------------------------------------------


def test_memory_error_is_reported_and_the_next_cell_works():
    sb, _ = make()
    outcome = sb.run("x = 1\nhuge = [0] * (2 ** 60)")
    assert (
        "MemoryError" in outcome.error
        and "memory cap" in outcome.error
        and "line 2" in outcome.error
    )
    assert ok(sb, "x + 1") == "2\n"


def test_limit_memory_caps_the_process():
    script = textwrap.dedent(
        """
        import json
        from rlm_ray.sandbox import Sandbox, limit_memory
        limit_memory(200)
        sb = Sandbox()
        big = sb.run("s = 'x' * (1024 ** 3)")
        small = sb.run("t = 'x' * (10 * 1024 ** 2)\\nlen(t)")
        print(json.dumps([big.error, small.error, small.stdout]))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    big_error, small_error, small_stdout = json.loads(done.stdout)
    assert "MemoryError" in big_error
    assert small_error is None and small_stdout == "10485760\n"


def test_limit_memory_checks_and_warns(monkeypatch):
    with pytest.raises(ConfigError):
        limit_memory(0)
    monkeypatch.setattr(memory_cap, "_vmdata_bytes", lambda: None)
    with pytest.warns(RuntimeWarning, match="not supported"):
        limit_memory(100)
