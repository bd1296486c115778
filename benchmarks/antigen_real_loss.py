"""Real counts, known loss: removing the antigen from a known share q of a real T-cell group's cells.

Groups are disjoint random sets of ~400 real T cells of each sorted CD3+CAT+ sample of
../shared/data/carpall. In each trial the antigen counts of a random share q of the group's cells are thinned
to 0 (their library size loses those UMIs). The estimate should rise from pi0 (the estimate on the untouched
group, which need not be 0) to pi0 + q (1 - pi0); a trial succeeds when that target lies in the 95 % interval.
theta and its interval come from the untouched data of all groups (a patient-level nuisance), the ambient
rate from clearly non-T cells of the unsorted samples.

    python benchmarks/antigen_real_loss.py [--reps 3] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))

import antigen_data
from antigen_real_depth import fit_all, make_groups

from cd7escape.tl._antigen._model import estimate_ambient_rate, fit_antigen_mixture

QS = (0.0, 0.05, 0.1, 0.2, 0.3)


def main(reps: int, seed: int, size: int = 400, antigen: str = "CD7") -> None:
    rng = np.random.default_rng(seed)
    cells = antigen_data.sorted_t_cells()
    ref = antigen_data.non_t_cells()
    a = estimate_ambient_rate(ref[antigen], ref["total"])
    y = cells[antigen].to_numpy().astype(float)
    s = cells["total"].to_numpy().astype(float)
    lab = make_groups(cells, size, rng)
    (theta, lo, hi), fits0 = fit_all(y, s, lab, a)
    print(
        f"{len(fits0)} groups of real T cells; theta {theta:.2f} [{lo:.2f}, {hi:.2f}]; ambient {a:.3g}/UMI"
    )
    rows = []
    for g, f0 in fits0.items():
        idx = np.flatnonzero(lab == g)
        yg, sg = y[idx], s[idx]
        for q in QS:
            for r in range(reps if q > 0 else 1):
                k = round(q * idx.size)
                hit = rng.choice(idx.size, k, replace=False)
                yq, sq = yg.copy(), sg.copy()
                sq[hit] -= yq[hit]
                yq[hit] = 0
                f = fit_antigen_mixture(yq, sq, ambient_rate=a, theta=theta, theta_ci=(lo, hi))
                q_eff = k / idx.size
                target = f0.pi + q_eff * (1 - f0.pi)
                rows.append(
                    {
                        "group": g,
                        "q": q,
                        "rep": r,
                        "pi0": f0.pi,
                        "target": target,
                        "pi": f.pi,
                        "ci_low": f.ci_low,
                        "ci_high": f.ci_high,
                        "covered": f.ci_low - 1e-9 <= target <= f.ci_high + 1e-9,
                        "rise": f.pi - f0.pi,
                        "expected_rise": target - f0.pi,
                        "naive_rise": f.zero_fraction - f0.zero_fraction,
                        "identifiable": f.identifiable,
                    }
                )
    df = pd.DataFrame(rows)
    tab = df.groupby("q").agg(
        trials=("covered", "size"),
        covered=("covered", "mean"),
        expected_rise=("expected_rise", "mean"),
        model_rise=("rise", "mean"),
        naive_rise=("naive_rise", "mean"),
        identifiable=("identifiable", "mean"),
    )
    print(tab.round(3).to_string())
    print(
        f"\nall trials: target pi0 + q(1 - pi0) inside the 95 % interval in {df.covered.mean():.3f} "
        f"({df.covered.sum()}/{len(df)}); q > 0 only: {df[df.q > 0].covered.mean():.3f}; "
        f"mean |rise - expected| {np.mean(np.abs(df.rise - df.expected_rise)):.3f}"
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    main(args.reps, args.seed)
