"""cd7escape's vectorised Scrublet (pp._doublets) against ``scanpy.pp.scrublet`` on the same cells.

A simulated sample (``simulate_patient``, baseline) gets 6 % artificial doublets: the summed counts of two
random cells of *different* cell classes (the doublets Scrublet can detect). Both implementations score
the same matrix; printed are the wall time of each, the Spearman correlation of their scores, the
agreement of their calls, and each one's sensitivity for the injected doublets and false-positive rate
on the real singlets.

    python benchmarks/doublets_vs_scrublet.py [--cells 10000 20000] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import sparse, stats


def sample_with_doublets(n_cells: int, seed: int, rate: float = 0.06):
    import cd7escape as ce

    # n_cells per sample: the baseline sample is the one scored
    a = ce.datasets.simulate_patient("antigen_retained", seed=seed, n_cells=n_cells)
    a = a[a.obs["timepoint"] == "baseline"]
    x = sparse.csr_matrix(a.layers.get("counts", a.X))
    cls = a.obs["truth_cell_type"].astype(str).to_numpy()
    rng = np.random.default_rng(seed)
    n_dbl = int(rate * x.shape[0])
    i = rng.integers(0, x.shape[0], 4 * n_dbl)
    j = rng.integers(0, x.shape[0], 4 * n_dbl)
    hetero = np.flatnonzero(cls[i] != cls[j])[:n_dbl]
    dbl = x[i[hetero]] + x[j[hetero]]
    truth = np.r_[np.zeros(x.shape[0], bool), np.ones(dbl.shape[0], bool)]
    return sparse.vstack([x, dbl]).tocsr(), truth


def main(sizes: list[int], seed: int) -> None:
    import anndata as ad
    import scanpy as sc

    from cd7escape.pp._doublets import score_doublets

    print("| cells | scanpy s | cd7escape s | ratio | Spearman | calls agree | sens scanpy | sens ours "
          "| FPR scanpy | FPR ours |")  # fmt: skip
    print("|---:" * 10 + "|")
    for n in sizes:
        x, truth = sample_with_doublets(n, seed)
        t = time.perf_counter()
        sub = ad.AnnData(x.astype(np.float32))
        sc.pp.scrublet(
            sub, expected_doublet_rate=0.06, use_approx_neighbors=False, random_state=seed
        )
        t_sc = time.perf_counter() - t
        t = time.perf_counter()
        ours = score_doublets(x, expected_doublet_rate=0.06, seed=seed)
        t_ours = time.perf_counter() - t
        s_sc = sub.obs["doublet_score"].to_numpy()
        c_sc = sub.obs["predicted_doublet"].to_numpy(dtype=bool)
        rho = stats.spearmanr(s_sc, ours.scores).statistic
        print(
            f"| {x.shape[0]} | {t_sc:.1f} | {t_ours:.1f} | {t_ours / t_sc:.2f} | {rho:.3f} "
            f"| {np.mean(c_sc == ours.predicted):.3f} | {c_sc[truth].mean():.3f} "
            f"| {ours.predicted[truth].mean():.3f} | {c_sc[~truth].mean():.4f} "
            f"| {ours.predicted[~truth].mean():.4f} |",
            flush=True,
        )


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, nargs="+", default=[10_000, 20_000])
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    main(a.cells, a.seed)
