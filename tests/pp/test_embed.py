from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

import cd7escape as ce


@pytest.fixture(scope="module")
def embedded(simulated_patients):
    adata = simulated_patients.copy("antigen_downregulation")  # 2 x 400 cells
    # a gene that tracks the antigen (its clusters would proxy CD7)
    cd7 = adata.layers["counts"][:, adata.var_names.get_loc("CD7")]
    twin = sparse.csr_matrix(cd7.toarray() * 3)
    import anndata as ad

    extra = ad.AnnData(twin, obs=adata.obs[[]])
    extra.var_names = ["CD7_TWIN"]
    extra.layers["counts"] = twin
    adata = ad.concat([adata, extra], axis=1, merge="first")
    ce.pp.embed(adata, antigen="CD7", n_top_genes=500, exclude=("CAR_CD7",), umap=False)
    return adata


def test_antigen_and_correlated_genes_never_features(embedded):
    excluded = embedded.uns["cd7escape"]["embed"]["excluded_genes"]
    assert {"CD7", "CD7_TWIN", "CAR_CD7"} <= set(excluded)
    hvg = embedded.var["highly_variable"]
    assert not hvg[["CD7", "CD7_TWIN", "CAR_CD7"]].any()
    assert hvg.sum() == 500


def test_embed_writes_graph_and_clusters(embedded):
    assert embedded.obsm["X_pca"].shape == (embedded.n_obs, 30)
    assert "connectivities" in embedded.obsp
    assert embedded.obs["leiden"].nunique() > 1
    assert embedded.uns["cd7escape"]["embed"]["params"]["antigen"] == "CD7"


def test_normalize_log_matches_scanpy(embedded):
    import scanpy as sc

    ref = embedded.copy()
    ref.X = ref.layers["counts"].copy()
    sc.pp.normalize_total(ref, target_sum=1e4)
    sc.pp.log1p(ref)
    np.testing.assert_allclose(embedded.X.toarray(), ref.X.toarray(), rtol=1e-5, atol=1e-6)


def test_umap_starts_from_the_first_two_pcs_whatever_their_memory_layout(embedded, monkeypatch):
    import umap.umap_

    starts = []
    layout = umap.umap_.simplicial_set_embedding

    def spy(**kwargs):
        starts.append(np.array(kwargs["init"]))
        return layout(**kwargs)

    monkeypatch.setattr(umap.umap_, "simplicial_set_embedding", spy)
    f_order, c_order = embedded.copy(), embedded.copy()
    c_order.obsm["X_pca"] = np.ascontiguousarray(c_order.obsm["X_pca"])
    ce.pp._embed.umap_layout(f_order, seed=2)
    ce.pp._embed.umap_layout(c_order, seed=2)
    np.testing.assert_array_equal(f_order.obsm["X_umap"], c_order.obsm["X_umap"])
    pcs = embedded.obsm["X_pca"][:, :2]
    np.testing.assert_allclose(starts[0], pcs * (10 / np.abs(pcs).max()), rtol=1e-6)
    assert np.abs(starts[0]).max() == pytest.approx(10)
