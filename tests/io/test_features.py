from __future__ import annotations

import re

import pytest

from cd7escape.io._features import match_features

NAMES = ["CD7", "CAR_CD7", "CAT_scFv", "MT-CO1"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("CAR_CD7", ["CAR_CD7"]),  # exact name wins
        ("CA[RT]_.*", ["CAR_CD7", "CAT_scFv"]),  # full regex matches
        ("scFv", ["CAT_scFv"]),  # else a partial match
        ("CD19CAR", []),
        (None, []),
    ],
)
def test_match_features(query, expected):
    assert match_features(NAMES, query) == expected


def test_invalid_regex_raises():
    with pytest.raises(re.error):
        match_features(NAMES, "CAR[")
