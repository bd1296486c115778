from __future__ import annotations

import pytest

from cd7escape import _parallel


@pytest.mark.parametrize("cpus", [1, 2])
def test_map_threads_keeps_the_order_of_parts(cpus, monkeypatch):
    monkeypatch.setattr(_parallel, "available_cpus", lambda: cpus)
    assert _parallel.map_threads(lambda v: v * v, [3, 1, 4, 1, 5]) == [9, 1, 16, 1, 25]
    assert _parallel.map_threads(str, []) == []


def test_in_thread_returns_and_reraises():
    assert _parallel.in_thread(sum, [1, 2], start=3).result() == 6
    with pytest.raises(ZeroDivisionError):
        _parallel.in_thread(lambda: 1 / 0).result()


def test_one_library_thread_inside_parts_then_restored(monkeypatch):
    np = pytest.importorskip("numpy")  # loads OpenBLAS
    pytest.importorskip("faiss")  # loads an OpenMP runtime
    from threadpoolctl import threadpool_info, threadpool_limits

    monkeypatch.setattr(_parallel, "available_cpus", lambda: 2)

    def counts(_):
        np.ones((4, 4)) @ np.ones((4, 4))
        # other pools (e.g. scipy.io's matrix-market reader, once loaded) are not limited
        info = [p for p in threadpool_info() if p["user_api"] in ("blas", "openmp")]
        return sorted({(p["user_api"], p["prefix"], p["num_threads"]) for p in info})

    with threadpool_limits(2):
        before = counts(None)
        inside = _parallel.map_threads(counts, [0, 1, 2], one_library_thread=True)
        after = counts(None)
    assert {api for part in inside for api, _, _ in part} >= {"blas", "openmp"}
    assert all(n == 1 for part in inside for _, _, n in part), inside
    assert after == before
    assert any(n == 2 for _, _, n in before)
