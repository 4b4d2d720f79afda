"""JSON bodies must be UTF-8 (RFC 8259, 8.1): UTF-16 and UTF-32, with or without a
byte-order mark, are refused with 415 before anything reads them, so the depth limit
can never be read past by re-encoding a body."""

from __future__ import annotations

import codecs
import json

import pytest

from tests.conftest import User
from tests.routes.support import assert_problem
from todo_api.http.request_limits import MAX_JSON_DEPTH

JSON = {"Content-Type": "application/json"}
ENCODINGS = ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"]


def deep(levels: int) -> str:
    return '{"title": "t", "tags": ' + "[" * levels + "]" * levels + "}"


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_a_deep_body_in_another_encoding_is_refused(alice: User, encoding: str) -> None:
    raw = deep(MAX_JSON_DEPTH * 100).encode(encoding)
    response = await alice.post("/api/me/tasks", content=raw, headers=JSON)
    assert_problem(response, 415, "json_not_utf8")


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_a_valid_body_in_another_encoding_is_refused(alice: User, encoding: str) -> None:
    raw = json.dumps({"title": "t"}).encode(encoding)
    anonymous = await alice.http.post("/api/me/tasks", content=raw, headers=JSON)
    assert_problem(anonymous, 401, "token_missing")  # authentication comes first
    for method, path in (("POST", "/api/me/tasks"), ("PATCH", "/api/me")):
        response = await alice.request(method, path, content=raw, headers=JSON)
        assert_problem(response, 415, "json_not_utf8")
    # The same body in UTF-8, with or without a byte-order mark, is an ordinary request.
    for utf8 in (raw.decode(encoding).encode(), codecs.BOM_UTF8 + raw.decode(encoding).encode()):
        response = await alice.post("/api/me/tasks", content=utf8, headers=JSON)
        assert response.status_code == 201, response.text


async def test_quotes_hidden_in_utf16_code_units_do_not_hide_nesting(alice: User) -> None:
    # U+2200 is the bytes 22 00 in UTF-16-LE: a byte-wise reader sees a quote where the
    # parser sees a letter, and would skip the brackets that follow as "string".
    text = '{"title": "\u2200", "tags": ' + "[" * 5000 + "]" * 5000 + ', "x": "\u2200"}'
    raw = codecs.BOM_UTF16_LE + text.encode("utf-16-le")
    response = await alice.post("/api/me/tasks", content=raw, headers=JSON)
    assert_problem(response, 415, "json_not_utf8")
