"""The redaction processor masks secrets by key and inside free text."""

from __future__ import annotations

from typing import Any

import pytest

from instrumentation.redaction import MASK, Redactor


def redact(event: dict[str, Any], extra: tuple[str, ...] = ()) -> dict[str, Any]:
    return dict(Redactor(extra)(None, "info", dict(event)))


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "db_password",
        "Authorization",
        "X-Auth-Token",
        "client_secret",
        "Cookie",
        "set-cookie",
        "api_key",
        "apiKey",
        "session_id",
        "aws_credentials",
        "private_key",
    ],
)
def test_values_under_secret_looking_keys_are_masked(key: str) -> None:
    assert redact({key: "hunter2"})[key] == MASK


def test_bearer_tokens_and_jwts_in_strings_are_masked() -> None:
    out = redact(
        {
            "event": "calling upstream with Authorization: Bearer abc.def-123",
            "note": "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig_nature-here in a sentence",
        }
    )
    assert "abc.def-123" not in out["event"]
    assert "Bearer " + MASK in out["event"]
    assert "eyJhbGci" not in out["note"]
    assert out["note"].startswith("token ")


def test_key_value_pairs_inside_text_are_masked() -> None:
    out = redact({"event": 'login failed for ann password=hunter2 next="x"; api_key: "k-123"'})
    assert "hunter2" not in out["event"]
    assert "k-123" not in out["event"]
    assert "login failed for ann" in out["event"]
    assert 'next="x"' in out["event"]


def test_nested_structures_are_walked() -> None:
    out = redact(
        {
            "request": {
                "headers": {"authorization": "Basic dXNlcjpwYXNz", "accept": "*/*"},
                "items": [{"token": "t"}, "Bearer zzzzzz"],
            }
        }
    )
    headers = out["request"]["headers"]
    assert headers == {"authorization": MASK, "accept": "*/*"}
    assert out["request"]["items"] == [{"token": MASK}, "Bearer " + MASK]


def test_ordinary_fields_and_structural_keys_are_untouched() -> None:
    event = {
        "event": "order placed",
        "level": "info",
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "order_id": 17,
        "amount": 9.5,
        "user": "ann",
    }
    assert redact(event) == event


def test_extra_keys_from_settings_are_masked() -> None:
    assert redact({"ssn": "123-45-6789"}, extra=("ssn",))["ssn"] == MASK
    assert redact({"ssn": "123-45-6789"})["ssn"] == "123-45-6789"
