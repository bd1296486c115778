"""Finding a feature (the CAR transgene) by name or regular expression, one rule for every stage."""

from __future__ import annotations

import re
from collections.abc import Iterable


def match_features(var_names: Iterable[str], name_or_regex: str | None) -> list[str]:
    """Features for ``name_or_regex``: the exact name, else full regex matches, else partial ones.

    Raises :class:`re.error` when the text is neither a feature name nor a valid regular expression.
    """
    if not name_or_regex:
        return []
    names = [str(v) for v in var_names]
    if name_or_regex in names:
        return [name_or_regex]
    pattern = re.compile(name_or_regex)
    return [v for v in names if pattern.fullmatch(v)] or [v for v in names if pattern.search(v)]
