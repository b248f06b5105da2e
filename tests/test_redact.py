"""Which values are secrets, and masking them in text, trace trees and errors (no Ray)."""

from __future__ import annotations

from rlm_ray.errors import LLMError
from rlm_ray.safety.redact import redact, redact_error, redact_tree, secret_values
from rlm_ray.types import CallTrace, CellTrace, IterationTrace, SubCallTrace


def test_secret_values_come_from_the_key_and_secret_named_arguments():
    found = secret_values(
        "sk-main-key",
        {
            "temperature": 0.5,
            "stop": ["END"],
            "extra_headers": {"Authorization": "Bearer tok-in-header", "X-Request-Id": "r-1234"},
            "aws_secret_access_key": "aws-secret-1",
        },
        {"headers": {"x-api-key": "hdr-key-99"}, "vertex_credentials": {"private": "pem-data"}},
    )
    assert set(found) == {
        "sk-main-key",
        "Bearer tok-in-header",
        "tok-in-header",  # a provider may echo the token without its scheme
        "aws-secret-1",
        "hdr-key-99",
        "pem-data",
    }
    assert found == sorted(found, key=len, reverse=True)  # longest first: no partial masking


def test_short_and_missing_values_are_not_secrets():
    assert secret_values(None, {"api_token": "ab"}, {}) == []


def test_redact_masks_every_occurrence():
    assert redact("key sk-abcd and sk-abcd again", ["sk-abcd"]) == "key *** and *** again"


def test_redact_tree_reaches_every_string_of_a_trace():
    sub = SubCallTrace("llm", "m", "prompt sk-abcd", error="echo sk-abcd")
    cell = CellTrace(code="print('sk-abcd')", output="sk-abcd\n", subcalls=[sub])
    child = CallTrace("r.0", 1, "m", "child sk-abcd", answer="sk-abcd")
    sub.child = child
    root = CallTrace("r", 0, "m", "q", iterations=[IterationTrace(0, "reply", cells=[cell])])
    redact_tree(root, ["sk-abcd"])
    assert "sk-abcd" not in repr(root)
    assert cell.output == "***\n" and child.answer == "***" and sub.error == "echo ***"


def test_redact_error_keeps_the_type_and_fields():
    exc = LLMError("refused key sk-abcd", model="m", status_code=401)
    assert redact_error(exc, ["sk-abcd"]) is exc
    assert str(exc) == "refused key ***" and exc.status_code == 401
