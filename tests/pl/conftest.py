from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic import make_patient


@pytest.fixture(scope="session")
def toy_adata():
    """A hand-built patient with every key ``pl`` reads (copy before modifying)."""
    return make_patient()
