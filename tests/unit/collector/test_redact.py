"""The collector masks secrets by attribute key and inside free text, and leaves the rest."""

from __future__ import annotations

import pytest

from collector.redact import MASK, redact_text, secret_key, suspect


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "db.password",
        "db_password",
        "http.request.header.authorization",
        "http.request.header.x-auth-token",
        "http.request.header.cookie",
        "http.response.header.set-cookie",
        "apiKey",
        "api_key",
        "x-api-key",
        "client_secret",
        "aws.secret_access_key",
        "private_key",
        "access_token",
        "credentials",
    ],
)
def test_secret_keys_are_recognised_by_their_words(key: str) -> None:
    assert secret_key(key)


@pytest.mark.parametrize(
    "key",
    [
        "http.route",
        "url.path",
        "gen_ai.usage.input_tokens",
        "app.cache.hit",
        "session.id",
        "http.request.header.content-type",
        "keyboard",
        "db.operation.name",
    ],
)
def test_ordinary_keys_are_not_secret(key: str) -> None:
    assert not secret_key(key)


@pytest.mark.parametrize(
    ("text", "kept", "gone"),
    [
        ("Authorization: Bearer abc.def-123456", "Bearer", "abc.def-123456"),
        ("https://alice:hunter2@db.example:5432/x", "db.example", "hunter2"),
        ("/search?q=shoes&token=s3cr3tvalue&page=2", "q=shoes", "s3cr3tvalue"),
        ("login failed password=hunter2 for alice", "for alice", "hunter2"),
        ("host=db user=app password='pa ss' dbname=x", "dbname=x", "pa ss"),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", "jwt", "eyJhbGciOiJIUzI1NiJ9"),
        ('{"api_key": "k-123456"}', "api_key", "k-123456"),
    ],
)
def test_credentials_inside_text_are_masked(text: str, kept: str, gone: str) -> None:
    out = redact_text(text)
    assert gone not in out
    assert kept in out
    assert MASK in out or "REDACTED:REDACTED" in out


def test_text_without_credentials_is_unchanged() -> None:
    for text in ("GET /items/{key}", "tokens used: 5", "cache miss for key 42", ""):
        assert redact_text(text) == text


@pytest.mark.parametrize("pad", [0, 20_000])
@pytest.mark.parametrize(
    ("marker", "expected"),
    [
        (b"", False),
        (b"http://host/path", False),
        (b"X-Auth-TOKEN", True),
        (b"Bearer", True),
        (b"https://u:p@host", True),
        (b"eyJhbGciOiJIUzI1NiJ9", True),
        (b"db.PassWord", True),
    ],
)
def test_the_pre_check_finds_markers_in_small_and_large_bodies(
    pad: int, marker: bytes, expected: bool
) -> None:
    """Small bodies take the substring path, large ones the RE2 path: same answers."""
    body = b"\x00" * pad + marker + b"\x01" * pad
    assert suspect(body) is expected
