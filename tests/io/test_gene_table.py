from __future__ import annotations

import pandas as pd

from cd7escape.io import gene_table


def test_gene_table():
    t = gene_table()
    assert len(t) == 28_257
    assert t.index.is_unique
    assert list(t.columns) == ["ensembl_id", "chromosome", "start", "end"]
    assert t.loc["CD7", "chromosome"] == "chr17"
    assert t.loc["CD7", "ensembl_id"] == "ENSG00000173762"
    assert (t["end"] >= t["start"]).all()
    assert isinstance(t["chromosome"].dtype, pd.CategoricalDtype)
    t.loc["CD7", "start"] = -1  # a copy: the cache is untouched
    assert gene_table().loc["CD7", "start"] > 0
