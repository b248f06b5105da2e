"""Model-chosen model strings and the credentials of the environment (issue 25, item 1).

litellm takes a provider's key from its environment variable for any model string it is
handed, and sends it to the run's `api_base`. Model code naming `groq/...` must therefore never
reach litellm, and a key an endpoint echoes back must stay out of the cell output, of what the
model reads and of the trace. The attacks run end to end: a driver in a child process joins the
session's Ray with fake provider keys in every worker's environment (`runtime_env`), its model
is the scripted server over HTTP, and the server records every header it receives.
"""

from __future__ import annotations

import json

import pytest
from helpers import run_python

from rlm_ray import RLM, ConfigError
from rlm_ray.testing import Reply, by_marker, code, turns

FAKE_KEYS = {
    "OPENAI_API_KEY": "sk-openai-FAKE-configured-0001",  # the configured model's own key
    "GROQ_API_KEY": "gsk-FAKE-groq-key-0002",
    "ANTHROPIC_API_KEY": "sk-ant-FAKE-anthropic-0003",
    "GEMINI_API_KEY": "AIza-FAKE-gemini-key-0004",
    "AZURE_API_KEY": "azure-FAKE-api-key-0005",
    "MISTRAL_API_KEY": "mistral-FAKE-key-0006",
    "AWS_SECRET_ACCESS_KEY": "aws-FAKE-secret-access-0007",
    "HF_TOKEN": "hf_FAKE_token_0008",
}
OTHER_KEYS = [v for k, v in FAKE_KEYS.items() if k != "OPENAI_API_KEY"]
FOREIGN = [
    "groq/llama3-8b-8192",
    "anthropic/claude-3-haiku-20240307",
    "gemini/gemini-1.5-flash",
    "azure/gpt-4o",
    "mistral/mistral-small",
]

ATTACK = f"""
calls = {{
    'llm_query': lambda m: llm_query('SUBHI', model=m),
    'llm_query_batched': lambda m: llm_query_batched(['SUBHI'], model=m),
    'rlm_query': lambda m: rlm_query('SUBHI', model=m),
    'rlm_query_batched': lambda m: rlm_query_batched(['SUBHI'], model=m),
    'llm_map': lambda m: llm_map('SUBHI', ['a'], model=m),
    'llm_filter': lambda m: llm_filter('SUBHI', ['a'], model=m),
    'llm_classify': lambda m: llm_classify(['SUBHI'], ['x', 'y'], model=m),
}}
for m in {FOREIGN!r}:
    for name, call in calls.items():
        try:
            print(name, m, 'ANSWERED', str(call(m))[:80])
        except Exception as e:
            print(name, m, 'REFUSED', e)
"""

ECHO = """
try:
    print(llm_query('ECHO me'))
except Exception as e:
    print('ECHOED', e)
"""


def _echo_auth(request):
    """An endpoint that refuses the key it got and quotes it back, as some providers do."""
    auth = {k.lower(): v for k, v in request.headers.items()}.get("authorization", "")
    return Reply(f"Incorrect API key provided: {auth}", status=401)


SCRIPT = by_marker(
    {
        "SUBHI": "hello",
        "ECHO me": _echo_auth,
        "Q-ATTACK": turns(code(ATTACK), "FINAL(done)"),
        "Q-ECHO": turns(code(ECHO), "FINAL(done)"),
    }
)

# The driver: every Ray worker of its job (gateways, REPLs) has the fake keys in its
# environment, as it would on a node where they are set; the key is left to the environment.
DRIVER = """
import json, os, sys
address, url, keys, out = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
os.environ.update(keys)
import ray
env = {**keys, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
ray.init(address=address, runtime_env={"env_vars": env}, log_to_driver=False)
from rlm_ray import RLM
from rlm_ray.trace.file import write_trace
rlm = RLM("openai/scripted", api_base=url, max_retries=0, max_time_s=300)
for name, query in (("attack", "Q-ATTACK"), ("echo", "Q-ECHO")):
    result = rlm.completion(query, "ctx")
    write_trace(result.trace, f"{out}/{name}.jsonl")
    print(name, result.answer)
"""


@pytest.fixture(scope="module")
def driven(ray_session, _server, tmp_path_factory):
    """The two runs of `DRIVER` against the scripted server: (process, server, out dir)."""
    _server.reset()
    _server.reply = SCRIPT
    out = tmp_path_factory.mktemp("keys")
    address = ray_session.get_runtime_context().gcs_address
    done = run_python("-c", DRIVER, address, _server.url, json.dumps(FAKE_KEYS), str(out))
    yield done, _server, out
    _server.reset()


def _traces(out) -> str:
    return (out / "attack.jsonl").read_text() + (out / "echo.jsonl").read_text()


@pytest.mark.ray
def test_model_code_cannot_call_a_model_the_user_did_not_configure(driven):
    done, server, out = driven
    assert done.returncode == 0, done.stderr
    assert "attack done" in done.stdout
    seen = json.dumps(server.http_log)  # every header and path of every request, any route
    leaked = [key for key in OTHER_KEYS if key in seen]
    assert not leaked, f"provider keys reached api_base: {leaked}"
    assert {r.model for r in server.requests} == {"scripted"}
    records = [json.loads(line) for line in (out / "attack.jsonl").read_text().splitlines()]
    output = records[0]["iterations"][0]["cells"][0]["output"]
    assert "ANSWERED" not in output
    assert output.count("REFUSED") == len(FOREIGN) * 7
    assert "is not one of this run's models; allowed: 'openai/scripted'" in output


@pytest.mark.ray
def test_a_key_an_endpoint_echoes_is_masked_in_the_cell_and_the_trace(driven):
    done, server, out = driven
    assert done.returncode == 0, done.stderr
    echoed = (out / "echo.jsonl").read_text()
    assert "ECHOED" in echoed and "Incorrect API key provided" in echoed
    assert "Bearer ***" in echoed  # the configured key, left to the environment
    fed_back = json.dumps([r.messages for r in server.requests])  # what the model read
    for key in FAKE_KEYS.values():
        assert key not in _traces(out)
        assert key not in fed_back


@pytest.mark.ray
def test_the_gateway_refuses_a_model_outside_the_run(ray_session, model_server):
    """Defence in depth: a request for another provider's model, should one ever get past the
    REPL, is refused by the gateway before litellm (or any HTTP) sees it."""
    from rlm_ray.errors import LLMError
    from rlm_ray.models.llm import LLMRequest
    from rlm_ray.runtime.gateway import RemoteGateway

    gateway = RemoteGateway.remote()
    request = LLMRequest(
        "groq/llama3-8b-8192",
        [{"role": "user", "content": "hi"}],
        api_base=model_server.url,
        allowed_models=("openai/scripted",),
    )
    with pytest.raises(LLMError, match="not one of this run's models"):
        ray_session.get(gateway.complete.remote(request, "run-x", 4))
    assert model_server.http_log == []


@pytest.mark.ray
def test_models_listed_by_the_user_may_be_named(make_rlm, model_server):
    model_server.reply = by_marker(
        {"SUB": lambda r: f"model {r.model}"},
        default=turns(code("FINAL(llm_query('SUB', model='openai/other'))")),
    )
    result = make_rlm(models=["openai/other"]).completion("q", "ctx")
    assert result.answer == "model other"


@pytest.mark.ray
def test_the_cli_takes_the_list_as_models(model_server, ray_session, tmp_path, capsys):
    from rlm_ray.cli import main

    model_server.reply = by_marker(
        {"SUB": lambda r: f"model {r.model}"},
        default=turns(code("FINAL(llm_query('SUB', model='openai/b'))")),
    )
    context = tmp_path / "ctx.txt"
    context.write_text("ctx")
    argv = ["run", "--model", "openai/scripted", "--api-base", model_server.url, "--api-key", "k"]
    argv += ["--context", str(context), "--query", "q", "--quiet", "--models", "openai/a,openai/b"]
    capsys.readouterr()
    assert main(argv) == 0
    assert capsys.readouterr().out == "model b\n"


def test_an_operator_has_no_model_list():
    from rlm_ray import ops

    with pytest.raises(ConfigError, match="settings of an RLM"):
        ops.map("x", ["a"], model="openai/x", models=["openai/y"])


@pytest.mark.parametrize(
    "models, message",
    [
        ("openai/a", "must be a list of model strings"),
        (["openai/a", ""], "must hold model strings"),
        ([3], "must hold model strings"),
        (["no-such-provider-xyz"], "unknown model"),
    ],
)
def test_bad_model_lists_are_config_errors(models, message):
    with pytest.raises(ConfigError, match=message):
        RLM("openai/x", api_base="http://127.0.0.1:9/v1", models=models)


def test_only_credential_variables_count_as_secrets():
    from rlm_ray.safety.redact import environment_secrets

    environ = {
        "OPENAI_API_KEY": "sk-openai-123456",
        "AWS_SECRET_ACCESS_KEY": "aws-secret-123456",
        "AWS_SESSION_TOKEN": "aws-session-123456",
        "AZURE_CLIENT_SECRET": "azure-secret-1234",
        "GOOGLE_APPLICATION_CREDENTIALS": "/etc/gcp/creds.json",
        "WATSONX_APIKEY": "watsonx-12345678",
        "PGPASSWORD": "pg-password-1234",
        "HF_TOKEN": "hf_abcdefgh",
        "RAY_AUTH_MODE": "token",  # short: an ordinary word
        "TOKENIZERS_PARALLELISM": "false",
        "GIT_AUTHOR_EMAIL": "someone@example.com",
        "PWD": "/home/someone/project",
        "KEYTIMEOUT": "10000000",
        "SOME_TOKEN": "has a space in it",
    }
    assert set(environment_secrets(environ)) == {
        "sk-openai-123456",
        "aws-secret-123456",
        "aws-session-123456",
        "azure-secret-1234",
        "/etc/gcp/creds.json",
        "watsonx-12345678",
        "pg-password-1234",
        "hf_abcdefgh",
    }
