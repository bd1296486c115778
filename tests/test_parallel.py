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
