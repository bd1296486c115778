"""Calibration of the antigen mixture on simulated groups (the model of docs/method.md#antigen-model).

Groups are drawn from the model itself: size factors resampled from the real CARPALL library sizes and
rescaled to a median depth of 500-5,000 UMIs, true negative fraction 0-50 % (a fifth exactly 0), mean
count of expressing cells 0.2-5 UMIs, NB size theta per patient, ambient rate per patient. Per patient
(6 groups), theta and its interval are estimated by theta_interval over its groups (each fit widened
over that interval) and the ambient rate from 300 simulated
antigen-negative lineage cells, as antigen_state does. Prints coverage of the 95 % intervals, the mean
absolute error where identifiable, the interval width where not, and the naive zero fraction beside it.

    python benchmarks/antigen_calibration.py [--patients 40] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))

from cd7escape.tl._antigen._model import estimate_ambient_rate, fit_antigen_mixture, theta_interval


def library_sizes() -> np.ndarray:
    try:
        import antigen_data

        return antigen_data.library_sizes().astype(float)
    except (OSError, FileNotFoundError):  # no shared data: a log-normal stand-in
        return np.random.default_rng(1).lognormal(np.log(2000), 0.6, 20000)


def simulate_patient(rng, lib, n_groups=6):
    theta = float(np.exp(rng.uniform(np.log(1.5), np.log(10))))
    a = float(np.exp(rng.uniform(np.log(5e-6), np.log(3e-5))))
    groups = []
    for _ in range(n_groups):
        depth = float(np.exp(rng.uniform(np.log(500), np.log(5000))))
        n = int(rng.integers(200, 1501))
        s = rng.choice(lib, n) * depth / np.median(lib)
        s = np.maximum(np.round(s), 50.0)
        pi = 0.0 if rng.random() < 0.2 else float(rng.uniform(0, 0.5))
        mean = float(np.exp(rng.uniform(np.log(0.2), np.log(5))))
        mu = mean / depth
        neg = rng.random(n) < pi
        y = np.where(neg, rng.poisson(s * a), rng.poisson(rng.gamma(theta, s * mu / theta)))
        groups.append(
            {"y": y, "s": s, "pi": pi, "depth": depth, "mean": mean, "n": n, "theta": theta, "a": a}
        )
    s_ref = rng.choice(lib, 300) * 2000 / np.median(lib)
    y_ref = rng.poisson(s_ref * a)
    return groups, (y_ref, s_ref)


def run(n_patients: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    lib = library_sizes()
    rows = []
    t_fit = []
    for p in range(n_patients):
        groups, (y_ref, s_ref) = simulate_patient(rng, lib)
        a_hat = estimate_ambient_rate(y_ref, s_ref)
        y = np.concatenate([g["y"] for g in groups])
        s = np.concatenate([g["s"] for g in groups])
        lab = np.repeat(np.arange(len(groups)), [g["n"] for g in groups])
        th_hat, th_lo, th_hi = theta_interval(y, s, groups=lab, ambient_rate=a_hat)
        for g in groups:
            t0 = time.perf_counter()
            f = fit_antigen_mixture(
                g["y"], g["s"], ambient_rate=a_hat, theta=th_hat, theta_ci=(th_lo, th_hi)
            )
            t_fit.append(time.perf_counter() - t0)
            rows.append(
                {
                    "patient": p,
                    "true_pi": g["pi"],
                    "depth": g["depth"],
                    "mean_count": g["mean"],
                    "n": g["n"],
                    "theta": g["theta"],
                    "theta_hat": th_hat,
                    "pi_hat": f.pi,
                    "ci_low": f.ci_low,
                    "ci_high": f.ci_high,
                    "upper": f.upper_bound,
                    "identifiable": f.identifiable,
                    "naive": f.zero_fraction,
                    "dropout": f.dropout,
                    "covered": f.ci_low - 1e-9 <= g["pi"] <= f.ci_high + 1e-9,
                    "upper_covers": g["pi"] <= f.upper_bound + 1e-9,
                }
            )
    df = pd.DataFrame(rows)
    df.attrs["fit_ms"] = 1000 * float(np.median(t_fit))
    return df


def report(df: pd.DataFrame) -> None:
    df = df.assign(
        err=(df.pi_hat - df.true_pi).abs(),
        naive_err=(df.naive - df.true_pi).abs(),
        width=df.ci_high - df.ci_low,
    )
    print(f"groups: {len(df)}  (median fit time {df.attrs.get('fit_ms', float('nan')):.1f} ms)")
    print(f"coverage of 95 % intervals, all groups: {df.covered.mean():.3f}")
    print(f"coverage of one-sided 95 % upper bound: {df.upper_covers.mean():.3f}")
    idf = df[df.identifiable]
    nid = df[~df.identifiable]
    print(
        f"identifiable: {len(idf)} groups, coverage {idf.covered.mean():.3f}, MAE {idf.err.mean():.4f} "
        f"(naive zero fraction MAE {idf.naive_err.mean():.3f}), median width {idf.width.median():.3f}"
    )
    if len(nid):
        print(
            f"not identifiable: {len(nid)} groups, coverage {nid.covered.mean():.3f}, median width {nid.width.median():.3f}, "
            f"MAE {nid.err.mean():.3f} (naive {nid.naive_err.mean():.3f})"
        )
    bins = pd.cut(df.mean_count, [0.2, 0.5, 1, 2, 5.01], right=False)
    tab = df.groupby(bins, observed=True).agg(
        groups=("covered", "size"),
        coverage=("covered", "mean"),
        identifiable=("identifiable", "mean"),
        mae=("err", "mean"),
        naive_mae=("naive_err", "mean"),
        width=("width", "median"),
    )
    print("\nby mean count of expressing cells (UMIs/cell):")
    print(tab.round(3).to_string())
    dbins = pd.cut(df.depth, [500, 1000, 2000, 5001], right=False)
    tab = df.groupby(dbins, observed=True).agg(
        groups=("covered", "size"),
        coverage=("covered", "mean"),
        identifiable=("identifiable", "mean"),
        mae=("err", "mean"),
        naive_mae=("naive_err", "mean"),
        width=("width", "median"),
    )
    print("\nby median depth (UMIs/cell):")
    print(tab.round(3).to_string())
    print(
        f"\ntheta estimate / truth: median {np.median(df.theta_hat / df.theta):.2f}, "
        f"IQR {np.percentile(df.theta_hat / df.theta, 25):.2f}-{np.percentile(df.theta_hat / df.theta, 75):.2f}"
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    report(run(args.patients, args.seed))
