from __future__ import annotations

import pytest

from cd7escape.pipeline._cache import atomic_write_text, stage_key


def test_stage_key_depends_on_params_and_chain():
    a = stage_key("", "qc", {"min_counts": 300})
    assert a == stage_key("", "qc", {"min_counts": 300})
    assert a != stage_key("", "qc", {"min_counts": 301})
    assert stage_key(a, "embed", {}) != stage_key(
        stage_key("", "qc", {"min_counts": 1}), "embed", {}
    )


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "first")

    def boom(tmp):
        tmp.write_text("half")
        raise RuntimeError("killed")

    from cd7escape.pipeline._cache import atomic_write

    with pytest.raises(RuntimeError):
        atomic_write(target, boom)
    assert target.read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
