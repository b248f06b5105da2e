"""An answer copied from the prompt's worked examples is refused (issue 30): the chat case, a
session over HTTP with the `small` prompt, where the model answered "What did Sofia Rossi
complain about?" with a record of an example ("the tap in room 4 drips all night"), not of the
user's data. The same words in the user's data are an answer."""

from __future__ import annotations

import pytest

from rlm_ray.core.answer_check import copied, plain_words
from rlm_ray.prompting import prompts
from rlm_ray.testing import code

GUESTS = "\n".join(
    [
        "2026-03-02 | Sofia Rossi | The shower in my room ran cold every morning.",
        "2026-03-03 | Omar Haddad | Lovely breakfast, thank you!",
        "2026-03-04 | Sofia Rossi | Could I get a late checkout on Friday?",
    ]
)
QUESTION = "What did Sofia Rossi complain about?"
COPIED = "The tap in room 4 drips all night"  # a record of the small prompt's example
RIGHT = "the shower in her room ran cold every morning"


def test_the_copied_text_is_the_examples_and_not_the_users():
    assert plain_words(COPIED) in plain_words(prompts.SMALL.example_text())
    assert plain_words(COPIED) not in plain_words(GUESTS)


def test_what_counts_as_a_copy():
    examples = prompts.SMALL.example_text()

    def never(text: str) -> bool:
        return False

    assert copied(COPIED, examples, lambda: [QUESTION], never)
    assert copied(COPIED, examples, lambda: [QUESTION], lambda text: True) is None  # the data
    assert copied(COPIED, examples, lambda: [f"printed: {COPIED}!"], never) is None  # an output
    assert copied("yes", examples, lambda: [], never) is None  # too short to tell
    assert copied(RIGHT, examples, lambda: [], never) is None  # not in the examples


def guest_model(request):
    """Answers with the example's record first; told it was not accepted, reads the data; then
    answers from what it printed (the few-shot turns count as turns, so replies go by text)."""
    if "was not accepted" in request.last_user:
        return code("print([line for line in context.splitlines() if 'Sofia Rossi' in line])")
    if "['2026-03-02 | Sofia Rossi" in request.last_user:  # the printed list (not the preview)
        return f"FINAL({RIGHT})"
    return code(f"FINAL({COPIED!r})")


@pytest.mark.ray
def test_a_session_refuses_an_answer_copied_from_the_examples(make_rlm, model_server):
    model_server.reply = guest_model
    with make_rlm(prompt="small").session(GUESTS) as chat:
        result = chat.completion(QUESTION)
    assert result.answer == RIGHT
    refused = [r.last_user for r in model_server.requests if "was not accepted" in r.last_user]
    assert len(refused) == 1
    assert f"'{COPIED}' is text from the worked examples of your instructions" in refused[0]


@pytest.mark.ray
def test_the_same_words_in_the_users_data_are_an_answer(make_rlm, model_server):
    model_server.reply = guest_model
    data = GUESTS + "\n2026-03-05 | Sofia Rossi | And the tap in room 4 drips all night."
    result = make_rlm(prompt="small").completion(QUESTION, data)
    assert result.answer == COPIED  # the context holds it: not a copy
    assert not any("was not accepted" in r.last_user for r in model_server.requests)
