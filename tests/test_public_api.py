"""The public surface: users import from `rlm_ray` only, and `__all__` is the list of it."""

import rlm_ray


def test_all_is_sorted_and_complete():
    assert rlm_ray.__all__ == sorted(rlm_ray.__all__, key=lambda n: (n.upper() != n, n))
    public = {n for n in dir(rlm_ray) if not n.startswith("_")}
    modules = {n for n in public if type(getattr(rlm_ray, n)).__name__ == "module"}
    assert public - modules == set(rlm_ray.__all__)


def test_error_tree():
    assert issubclass(rlm_ray.ConfigError, rlm_ray.RLMError)
    assert issubclass(rlm_ray.ContextWindowError, rlm_ray.LLMError)
    for name in ("LLMError", "SandboxError", "SubCallError", "LimitExceededError"):
        assert issubclass(getattr(rlm_ray, name), rlm_ray.RLMError)
    assert issubclass(rlm_ray.LocalServerError, rlm_ray.RLMError)
    assert issubclass(rlm_ray.ProgramError, rlm_ray.RLMError)
    err = rlm_ray.ProgramError("cell 2 failed", cell=2, error="ZeroDivisionError")
    assert (err.cell, err.error) == (2, "ZeroDivisionError")
    assert not issubclass(rlm_ray.LocalServerError, rlm_ray.LLMError)
    assert rlm_ray.RLMError("x").trace is None  # a failed run's call tree, when there is one
    err = rlm_ray.LimitExceededError("max_time_s", 5.0, partial_answer="so far")
    assert (err.limit, err.value, err.partial_answer) == ("max_time_s", 5.0, "so far")


def test_errors_survive_pickling():
    import pickle

    err = pickle.loads(
        pickle.dumps(rlm_ray.LLMError("boom", model="m", api_base="u", status_code=502, attempts=3))
    )
    assert (str(err), err.model, err.api_base, err.status_code, err.attempts) == (
        "boom",
        "m",
        "u",
        502,
        3,
    )
    lim = pickle.loads(pickle.dumps(rlm_ray.LimitExceededError("max_time_s", 1, "p")))
    assert lim.partial_answer == "p"
    prog = pickle.loads(pickle.dumps(rlm_ray.ProgramError("m", cell=1, error="e")))
    assert (str(prog), prog.cell, prog.error) == ("m", 1, "e")


def test_importing_the_package_does_not_import_ray_or_litellm():
    import subprocess
    import sys

    code = "import rlm_ray, sys; print(*(m in sys.modules for m in ('ray', 'litellm', 'pyarrow')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False False"


def test_tool_marks_a_function_and_returns_it():
    def f(x: int) -> int:
        return x

    assert rlm_ray.tool(effects="read")(f) is f
    assert rlm_ray.tool(f) is f  # bare: effects="none"
    assert rlm_ray.tool("write")(f) is f
    call = rlm_ray.ToolCall("f", "write", {"x": 1})
    assert (call.name, call.effects, call.arguments, call["name"]) == ("f", "write", {"x": 1}, "f")
