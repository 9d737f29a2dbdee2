"""Query builders that are exact for Chinese under either analysis chain (see ``templates``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["DEFAULT_TEXT_FIELDS", "phrase_query"]

DEFAULT_TEXT_FIELDS: tuple[str, ...] = ("title", "text_simplified")


def phrase_query(text: str, fields: Sequence[str] = DEFAULT_TEXT_FIELDS) -> dict[str, Any]:
    """A query matching documents that contain every whitespace-separated term of ``text`` as a phrase.

    ``"受贿 局长"`` means 受贿 somewhere and 局长 somewhere, each in any of ``fields``. Each term is a
    ``match_phrase``, so 受贿 never matches a text where 受 and 贿 are not adjacent.
    """
    terms = text.split()
    if not terms:
        return {"match_none": {}}
    return {
        "bool": {
            "must": [
                {
                    "bool": {
                        "should": [{"match_phrase": {field: {"query": term}}} for field in fields],
                        "minimum_should_match": 1,
                    }
                }
                for term in terms
            ]
        }
    }
