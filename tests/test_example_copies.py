"""An answer copied from the prompt's worked examples is refused (issue 30): the chat case, a
session over HTTP with the `small` prompt, where the model answered "What did Sofia Rossi
complain about?" with a record of an example, not of the user's data."""

from __future__ import annotations

import pytest

from rlm_ray.prompting import plan_prompt, prompts
from rlm_ray.testing import code

GUESTS = "\n".join(
    [
        "2026-03-02 | Sofia Rossi | The shower in my room ran cold every morning.",
        "2026-03-03 | Omar Haddad | Lovely breakfast, thank you!",
        "2026-03-04 | Sofia Rossi | Could I get a late checkout on Friday?",
    ]
)
QUESTION = "What did Sofia Rossi complain about?"
# A record of the canteen example (made-up data), as a small model copies it.
COPIED = "the lentil soup was stone cold"


def test_the_copied_text_is_an_examples_and_no_users():
    assert COPIED in prompts.SMALL.example_text()
    assert COPIED not in GUESTS.lower()
    assert all(user.startswith(plan_prompt.EXAMPLE) for user, _ in plan_prompt.PLANS)


def guest_model(request):
    """Chooses code, answers with the example's record first, then searches the data."""
    if "response_format" in request.body:
        return '{"shape": "code"}'
    if request.last_user.startswith("Write one ```repl block"):
        return f"FINAL({COPIED})"
    if "was not accepted" in request.last_user:
        return code("print([r['text'] for r in as_records(context) if r['name'] == 'Sofia Rossi'])")
    return "FINAL(the shower in her room ran cold every morning)"


@pytest.mark.ray
def test_a_session_refuses_an_answer_copied_from_the_examples(make_rlm, model_server):
    model_server.reply = guest_model
    with make_rlm(prompt="small").session(GUESTS) as chat:
        result = chat.completion(QUESTION)
    assert result.answer == "the shower in her room ran cold every morning"
    refused = [r.last_user for r in model_server.requests if "was not accepted" in r.last_user]
    assert len(refused) == 1
    assert f"'{COPIED}' is text from the worked examples of your instructions" in refused[0]


@pytest.mark.ray
def test_the_same_words_in_the_users_data_are_an_answer(make_rlm, model_server):
    model_server.reply = guest_model
    data = GUESTS + "\n2026-03-05 | Sofia Rossi | And the lentil soup was stone cold."
    result = make_rlm(prompt="small").completion(QUESTION, data)
    assert result.answer == COPIED  # the context holds it: not a copy
    assert not any("was not accepted" in r.last_user for r in model_server.requests)
