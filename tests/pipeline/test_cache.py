from __future__ import annotations

from cd7escape.pipeline._cache import stage_key


def test_stage_key_depends_on_params_and_chain():
    a = stage_key("", "qc", {"min_counts": 300})
    assert a == stage_key("", "qc", {"min_counts": 300})
    assert a != stage_key("", "qc", {"min_counts": 301})
    assert stage_key(a, "embed", {}) != stage_key(
        stage_key("", "qc", {"min_counts": 1}), "embed", {}
    )
