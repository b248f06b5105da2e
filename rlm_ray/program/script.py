"""`program.save("p.py")`: a program as a readable standalone script. Pure text, no Ray.

The script holds the recorded settings as variables at the top, each cell's code as a raw
string in order (a comment says which turn it came from), and the answer rule; run it as
``python p.py --context NEW [--model M] [--api-base URL] ...`` (the options of `rlm-ray replay`;
the context may also be given as the first argument, or set in CONTEXT). It needs only rlm-ray.
"""

from __future__ import annotations

import ast
import dataclasses
import shlex
import textwrap
import unicodedata
from typing import Any

from rlm_ray.core.answer_rule import AnswerRule

_HEAD = '''#!/usr/bin/env python3
r"""An rlm-ray program, recorded from a run of the query

{query_doc}

It re-runs that run's code on new data, on Ray, with no root-model calls: `llm_query`, the
record operators and `recursive_llm` stay live calls (to SUB_MODEL); the root model's turns are
gone. The answer: {answer_doc}

    python {script} --context NEW_DATA [--model M] [--sub-model M] [--api-base URL] [--json]

(the options of `rlm-ray replay`; --allow-effects lets `write` tools run again). Needs rlm-ray.
"""

from rlm_ray.cli import program_main
from rlm_ray.program import AnswerRule, Program, ProgramCell

# -- the recorded run's settings (the command line overrides each) ------------------------------
MODEL = {model!r}  # --model: builds the RLM; a replay never calls it
SUB_MODEL = {sub_model!r}  # --sub-model: llm_query, record operators, recursive_llm
API_BASE = {api_base!r}  # --api-base
MAX_DEPTH = {max_depth!r}  # --max-depth: 1 = recursive_llm is one plain model call
PROMPT = {prompt!r}  # --prompt: the prompt of child RLMs
CONTEXT = None  # --context: a path to the new data (required if None)

QUERY = {query!r}
RECORDED_ANSWER = {recorded_answer!r}  # the recorded run's answer, for reference only
'''

_TAIL = """
# -- how the answer is taken -------------------------------------------------------------------
{answer_doc}
ANSWER = {answer}

PROGRAM = Program(
    query=QUERY,
    cells=CELLS,
    answer=ANSWER,
    model=MODEL,
    sub_model=SUB_MODEL,
    max_depth=MAX_DEPTH,
    prompt=PROMPT,
    recorded_answer=RECORDED_ANSWER,
    skipped=SKIPPED,
)

if __name__ == "__main__":
    raise SystemExit(program_main(PROGRAM, context=CONTEXT, api_base=API_BASE))
"""


def render(program: Any, *, api_base: str | None = None, script: str = "program.py") -> str:
    """The script's text (`Program.save`; `script`: its file name, for the usage line). Every
    recorded str comes back exactly (it is a literal); text shown for reading (the docstring,
    comments) has its control characters and lone surrogates escaped, so no query or code can
    keep the file from parsing."""
    answer_doc = _readable(program.answer.describe())
    head = _HEAD.format(
        script=_docstring_safe(_readable(_shell_word(script))),
        query_doc=_indented(program.query),
        answer_doc=_docstring_safe(_wrap(answer_doc, " " * 12, "")[12:]),
        model=program.model,
        sub_model=program.sub_model,
        api_base=api_base,
        max_depth=program.max_depth,
        prompt=program.prompt,
        query=program.query,
        recorded_answer=program.recorded_answer,
    )
    lines = [head, "# -- the cells the root call ran, in order " + "-" * 52, "CELLS = ["]
    for index, cell in enumerate(program.cells):
        lines.append(f"    # cell {index}: from the model's reply {cell.turn + 1}")
        lines.append(f"    ProgramCell(turn={cell.turn}, code={code_literal(cell.code)}),")
    lines.append("]")
    lines.append("# cells left out: they raised in the recorded run (the model rewrote them)")
    lines.append("SKIPPED = [")
    lines += [f"    {note!r}," for note in program.skipped]
    lines.append("]")
    comment = _wrap(answer_doc, "# ", "# ")
    tail = _TAIL.format(answer_doc=comment, answer=_rule(program.answer))
    return "\n".join(lines) + "\n" + tail


def code_literal(code: str) -> str:
    """`code` as a Python literal that reads like the code: a raw triple-quoted string when one
    holds it exactly, else `repr`."""
    for quote in ("'''", '"""'):
        literal = f"r{quote}\n{code}\n{quote}"
        try:
            if ast.literal_eval(literal).strip("\n") == code:
                return literal
        except (SyntaxError, ValueError):
            continue
    return repr(code)


def _rule(rule: AnswerRule) -> str:
    shown = []
    for f in dataclasses.fields(rule):
        value = getattr(rule, f.name)
        if value != f.default or f.name == "kind":
            shown.append(
                f"{f.name}={_str_literal(value) if isinstance(value, str) else repr(value)}"
            )
    return f"AnswerRule({', '.join(shown)})"


def _str_literal(text: str) -> str:
    """A one-line str as a raw literal when one holds it exactly (a regex reads as written)."""
    if "\\" not in text:
        return repr(text)
    for quote in ("'", '"'):
        literal = f"r{quote}{text}{quote}"
        try:
            if "\n" not in text and ast.literal_eval(literal) == text:
                return literal
        except (SyntaxError, ValueError):
            continue
    return repr(text)


def _shell_word(name: str) -> str:
    """A file name as a shell would take it (quoted if it holds anything but plain characters)."""
    return shlex.quote(name)


def _wrap(text: str, first: str, rest: str) -> str:
    return textwrap.fill(
        text,
        96,
        initial_indent=first,
        subsequent_indent=rest,
        break_long_words=False,
        break_on_hyphens=False,
    )


def _docstring_safe(text: str) -> str:
    """Text for the script's raw docstring: no triple quote, no backslash at a line's end."""
    lines = text.replace('"""', "'''").splitlines()
    return "\n".join(line + " " if line.endswith("\\") else line for line in lines)


def _readable(text: str) -> str:
    """`text` with its control characters (but newlines and tabs) and lone surrogates written
    as escapes: a NUL makes a file unparsable, a surrogate unwritable as UTF-8."""
    return "".join(
        repr(c)[1:-1] if c not in "\n\t" and unicodedata.category(c) in ("Cc", "Cs") else c
        for c in text
    )


def _indented(text: str) -> str:
    safe = _docstring_safe(_readable(text))
    return "\n".join("    " + line for line in safe.splitlines() or [""])
