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


def test_clone_seen_with_fewer_chains_is_also_tested_as_one():
    """End to end: the family of a simulated clone in three forms is tested and recorded, and every form is
    leukemic. Here each of its two large forms shows the change by itself too, so the call rests on them;
    the route where only the family shows it is the next test's."""
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


def test_a_family_counts_only_where_a_clonotype_was_tested_and_none_showed_a_change(monkeypatch):
    """The family route of ``_clones_with_copy_number``, with a copy-number test that sees a change in
    any unit of >= 150 cells and an artefact in one normal clone (and tests units of >= 20, as the real
    one does):

    - a leukemic clone read as two clonotypes of 110 and 90 cells: neither shows it, the family of 200
      does;
    - a clone whose clonotype of 160 cells shows it: its 30 TRB-only cells add no family;
    - a normal clone of 22 cells in forms of 12 and 10, whose family the test calls altered (an
      artefact): none of its clonotypes was tested, so the family does not count.
    """
    from cd7escape.tl._malignant import _call
    from cd7escape.tl._malignant._cnv import CLONE_COLUMNS, CLONE_MIN_CELLS, SEGMENT_COLUMNS
    from cd7escape.tl._malignant._tcr_evidence import clonotype_families

    def fake_test(counts, total, var, table, reference, units, null_labels, *, antigen, z_support):
        sizes = units.dropna().astype(str).value_counts()
        sizes = sizes[sizes >= CLONE_MIN_CELLS]
        clones = pd.DataFrame({c: np.nan for c in CLONE_COLUMNS}, index=range(len(sizes)))
        clones["clone_id"], clones["n_cells"] = list(sizes.index), list(sizes.to_numpy())
        # a change in any unit of >= 150 cells, and an expression artefact in the normal clone NNN
        clones["altered"] = (clones["n_cells"] >= 150) | clones["clone_id"].str.contains("NNN")
        altered = clones.loc[clones["altered"], "clone_id"]
        segments = pd.DataFrame({c: np.nan for c in SEGMENT_COLUMNS}, index=range(len(altered)))
        segments["clone_id"] = list(altered)
        return clones, segments

    monkeypatch.setattr(_call, "clone_copy_number", fake_test)
    split = ["TRB:AAA;TRA:CCC"] * 110 + ["TRB:AAA"] * 90
    whole = ["TRB:GGG;TRA:TTT"] * 160 + ["TRB:GGG"] * 30
    small = ["TRB:NNN;TRA:MMM"] * 12 + ["TRB:NNN"] * 10
    clone_id = pd.Series([*split, *whole, *small, None], dtype=object)
    clones, segments, altered, units = _call._clones_with_copy_number(
        None, None, None, None, None, clone_id, clonotype_families(clone_id), [], None,
        antigen="CD7",
    )  # fmt: skip
    assert altered == ["TRB:GGG;TRA:TTT", "family:TRB:AAA;TRA:CCC"]
    assert units[:200].all()  # the split clone, both forms
    assert units[200:360].all()
    assert not units[360:390].any()  # the TRB-only cells join later, by same_clone
    assert not units[390:].any()
    assert set(segments["clone_id"]) == set(altered)
    # every family of two or more clonotypes is tested and recorded, counted or not
    assert {"family:TRB:AAA;TRA:CCC", "family:TRB:GGG;TRA:TTT"} <= set(clones["clone_id"])
