"""Paging of the admin API's lists: ``limit`` (1 to 500) and an opaque ``cursor``.

A cursor is the key of the last item of a page (base64url JSON); a list answers ``next`` (the
URL of the following page, also in a ``Link: <...>; rel="next"`` header) and ``next_cursor``
until its last page. A cursor that does not decode to a key of the right shape is a 422.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar

from fastapi import Query, Request, Response

from tenantry.api.schemas import Text
from tenantry.errors import InvalidInput

__all__ = ["Cursor", "Limit", "decode_cursor", "encode_cursor", "id_key", "paginate", "text_key"]

T = TypeVar("T")

MAX_LIMIT = 500
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Items per page, 1 to {MAX_LIMIT}.")]
Cursor = Annotated[
    Text | None,
    Query(max_length=500, description="`next_cursor` of the previous page; absent for the first page."),
]


def encode_cursor(key: Sequence[Any]) -> str:
    raw = json.dumps(list(key), separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, *parsers: Callable[[Any], Any]) -> tuple[Any, ...]:
    """The key in ``cursor``, each part passed through its parser; :class:`InvalidInput`
    when it is not a cursor of this list."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
        if not isinstance(values, list) or len(values) != len(parsers):
            raise ValueError("wrong shape")
        return tuple(parse(value) for parse, value in zip(parsers, values))
    except (ValueError, TypeError, AttributeError, binascii.Error, UnicodeDecodeError, OverflowError):
        raise InvalidInput("the cursor is not valid for this list: use the next_cursor of the previous page") from None


def text_key(value: Any) -> str:
    """A text part of a cursor (one PostgreSQL can compare)."""
    if not isinstance(value, str) or "\x00" in value:
        raise ValueError("not a text key")
    value.encode("utf-8")  # lone surrogates raise UnicodeEncodeError, a ValueError
    return value


def id_key(value: Any) -> int:
    """A bigint part of a cursor."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
        raise ValueError("not a bigint key")
    return value


def paginate(
    request: Request, response: Response, items: list[T], limit: int, key: Callable[[T], Sequence[Any]]
) -> tuple[list[T], str | None, str | None]:
    """Cut ``items`` (read with ``limit + 1`` rows) to a page; returns it, the next page's URL
    and its cursor (both ``None`` on the last page), and sets the ``Link`` header."""
    if len(items) <= limit:
        return items, None, None
    page = items[:limit]
    cursor = encode_cursor(key(page[-1]))
    url = str(request.url.include_query_params(cursor=cursor))
    response.headers["Link"] = f'<{url}>; rel="next"'
    return page, url, cursor
