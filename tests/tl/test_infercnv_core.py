import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from cd7escape.tl._malignant._infercnv_core import infercnv_profile


@pytest.fixture(scope="module")
def expression():
    rng = np.random.default_rng(0)
    n_cells, per_chrom = 300, [130, 90, 40, 12]
    chroms = ["chr1", "chr10", "chr2", "chrX"]
    var = pd.DataFrame(
        {
            "chromosome": np.repeat(chroms, per_chrom),
            "start": np.concatenate([rng.permutation(k) * 1000 for k in per_chrom]),
        },
        index=[f"g{i}" for i in range(sum(per_chrom))],
    )
    var["end"] = var["start"] + 500
    var.loc["g5", "chromosome"] = None  # unplaced genes are skipped
    x = sp.random(n_cells, len(var), density=0.3, random_state=1, format="csr", dtype=np.float32)
    x.data = np.log1p(x.data * 5).astype(np.float32)
    return x, var


@pytest.mark.parametrize("n_refs", [1, 3])
def test_equals_infercnvpy(expression, n_refs):
    import anndata as ad
    import infercnvpy

    x, var = expression
    rng = np.random.default_rng(n_refs)
    reference = np.vstack(
        [np.asarray(x[rng.choice(x.shape[0], 50)].mean(0)).ravel() for _ in range(n_refs)]
    )
    chr_pos, ours = infercnv_profile(x, var, reference, window_size=25, step=5, chunksize=128)
    want_pos, want, _ = infercnvpy.tl.infercnv(
        ad.AnnData(X=x, var=var),
        reference=reference,
        window_size=25,
        step=5,
        dynamic_threshold=None,
        exclude_chromosomes=None,
        n_jobs=1,
        chunksize=128,
        inplace=False,
    )
    assert chr_pos == {k: int(v) for k, v in want_pos.items()}
    np.testing.assert_allclose(ours, want.toarray(), atol=1e-5)
