"""Page tokens: the query hash is no secret, so a token that passes it may still carry any
value, and what it carries must answer INVALID_ARGUMENT, not fail as INTERNAL."""

from __future__ import annotations

from typing import Any

import pytest

from stratopt.errors import InvalidArgument
from stratopt.store.paging import (
    Cursor,
    decode_token,
    encode_token,
    query_hash,
    token_float,
    token_int,
)


@pytest.mark.parametrize("key", ["abc", None, -3, [1], 1e400, "1e400"])
def test_a_forged_token_with_the_right_hash_is_an_invalid_argument(key: Any) -> None:
    qhash = query_hash(u="olga")
    cursor = decode_token(encode_token(Cursor(key, "x"), qhash), qhash)
    assert cursor is not None
    with pytest.raises(InvalidArgument) as e:
        token_int(cursor.key)
    assert e.value.violations[0].field == "page_token"


def test_numbers_a_token_carries_come_back() -> None:
    qhash = query_hash(u="olga")
    cursor = decode_token(encode_token(Cursor(41, "7"), qhash), qhash)
    assert cursor is not None
    assert (token_int(cursor.key), token_int(cursor.id), token_float("2.5")) == (41, 7, 2.5)
    with pytest.raises(InvalidArgument):
        token_float("two")
