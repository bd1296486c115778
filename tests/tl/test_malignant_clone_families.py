"""A leukemic clone whose TRA was read in some cells only is tested for copy number as one clone.

On a held-out semi-synthetic patient (real CARPALL T cells as mature-phenotype blasts, a 9p loss, TRA read
in half of the blasts) the clone was two clonotypes of ~160 cells (``TRB;TRA`` and ``TRB``); each reached
|z| ≥ 5 in one 40-gene block only, neither was called altered, and no cell was called malignant (F1 0;
0.963 with the clone tested as one).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

import cd7escape as ce
from cd7escape._lineages import LINEAGES

T = LINEAGES["T"]


def test_clone_seen_with_fewer_chains_is_tested_and_called_as_one():
    adata = ce.datasets.simulate_patient("antigen_retained", seed=3, n_cells=300, depth=1000)
    blasts = adata.obs["truth_malignant"].to_numpy(bool)
    # mature phenotype: the copy-number test of the clone is the route to the leukemia
    program = [*T.blast_specific, *T.blast_supporting, *T.tumour_targets]
    cols = adata.var_names.get_indexer([g for g in program if g in adata.var_names])
    x = sp.csr_matrix(adata.layers["counts"]).tolil()
    for j in cols[cols >= 0]:
        x[np.flatnonzero(blasts), j] = 0
    x = sp.csr_matrix(x)
    adata.layers["counts"], adata.X = x, x.copy()
    rng = np.random.default_rng(3)
    clone = adata.obs["clone_id"].astype(object)
    read = clone.notna().to_numpy()
    form = rng.random(adata.n_obs)
    beta_only = blasts & read & (form < 0.4)
    alpha_only = blasts & read & (form > 0.9)
    chains = clone.str.split(";")
    clone = clone.where(~beta_only, chains.str[0]).where(~alpha_only, chains.str[-1])
    adata.obs["clone_id"] = clone
    assert clone[blasts & read].nunique() >= 3
    ce.pp.embed(adata, antigen="CD7", umap=False, exclude=("CAR_CD7",), seed=0)
    ce.tl.call_malignant(adata, antigen="CD7", car_feature="CAR_CD7", seed=0)
    entry = adata.uns["cd7escape"]["malignant"]
    tested = pd.DataFrame(entry["clone_copy_number"]["clones"])
    family = tested[tested["n_cells"] >= 0.9 * (blasts & read).sum()]
    assert len(family) == 1
    assert family["altered"].iloc[0]
    # every form of the clone, the TRA-only one too, is leukemic
    evidence = adata.obs["tcr_evidence"].astype(str).to_numpy()
    assert (evidence[blasts & read] == "leukemic").all()
    called = adata.obs["malignant"].to_numpy(bool)
    tp, fp, fn = (called & blasts).sum(), (called & ~blasts).sum(), (~called & blasts).sum()
    assert 2 * tp / (2 * tp + fp + fn) >= 0.95
