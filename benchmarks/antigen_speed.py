"""Speed of the antigen model: one fit of 100k cells, and antigen_state on 100k cells in 10 groups.

python benchmarks/antigen_speed.py
"""

from __future__ import annotations

import time

import anndata as ad
import numpy as np
import pandas as pd
from scipy import sparse

from cd7escape.tl import antigen_state
from cd7escape.tl._antigen._model import fit_antigen_mixture, theta_interval


def simulate(n: int, rng, pi=0.2, mu=5e-4, theta=3.0, a=2e-5):
    s = np.round(rng.lognormal(np.log(2500), 0.5, n))
    neg = rng.random(n) < pi
    y = np.where(neg, rng.poisson(s * a), rng.poisson(rng.gamma(theta, s * mu / theta)))
    return y.astype(float), s


def best_of(fn, k=3):
    out = []
    for _ in range(k):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return min(out)


def main() -> None:
    rng = np.random.default_rng(0)
    y, s = simulate(100_000, rng)
    rows = []
    for n in (500, 5_000, 100_000):
        rows.append(
            {
                "cells": n,
                "fit, no interval (s)": best_of(
                    lambda n=n: fit_antigen_mixture(
                        y[:n], s[:n], ambient_rate=2e-5, theta=3.0, interval=False
                    )
                ),
                "fit with interval (s)": best_of(
                    lambda n=n: fit_antigen_mixture(y[:n], s[:n], ambient_rate=2e-5, theta=3.0)
                ),
                "fit with interval + theta_ci (s)": best_of(
                    lambda n=n: fit_antigen_mixture(
                        y[:n], s[:n], ambient_rate=2e-5, theta=3.0, theta_ci=(2.5, 3.6)
                    )
                ),
            }
        )
    lab = np.repeat(np.arange(10), 10_000)
    rows.append(
        {
            "cells": 100_000,
            "theta_interval, 10 groups (s)": best_of(
                lambda: theta_interval(y, s, groups=lab, ambient_rate=2e-5), 1
            ),
        }
    )
    print(pd.DataFrame(rows).set_index("cells").round(4).to_string())

    # antigen_state end to end: 100k malignant cells, 10 samples, 2 genes (antigen + the rest of the library)
    X = sparse.csr_matrix(np.column_stack([y, s - y]).astype(np.float32))
    obs = pd.DataFrame({"sample": pd.Categorical(lab.astype(str)), "malignant": True})
    obs.index = obs.index.astype(str)
    adata = ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=["CD7", "REST"]))
    adata.layers["counts"] = X
    t = time.perf_counter()
    antigen_state(adata, ambient=2e-5)
    t_state = time.perf_counter() - t
    t = time.perf_counter()
    antigen_state(adata, ambient=2e-5, theta=3.0)
    t_fixed = time.perf_counter() - t
    print(
        f"\nantigen_state, 100k cells, 10 groups: {t_state:.2f} s with theta estimated (with its interval); {t_fixed:.2f} s with theta given"
    )


if __name__ == "__main__":
    main()
