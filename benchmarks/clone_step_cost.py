"""Cost of the clone link at scale: subclones + classify_relapse on one simulated patient (issue 19).

The trace adds a joint antigen-free space (subclones) and neighbourhood searches plus a weighted antigen
fit per bootstrap replicate (classify_relapse). This script times the two stages as ``cd7escape run``
calls them, on the simulator's malignant calls (the malignant stage is not what is measured), after
``antigen_state``; run it with two checkouts to compare (``PYTHONPATH=<checkout>/src``).

    nice python benchmarks/clone_step_cost.py [--cells 100000] [--boot 50] [--mechanism preexisting_negative_clone]

Prints the seconds of each stage, wall and CPU (this process and its bootstrap workers: on a shared
machine the CPU seconds are the comparable figure), their sums, and the call.
"""

from __future__ import annotations

import argparse
import logging
import resource
import time
import warnings


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its finished children (bootstrap workers)."""
    own, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--cells", type=int, default=100_000, help="cells of the patient (half per sample)"
    )
    ap.add_argument(
        "--boot", type=int, default=50, help="bootstrap replicates (the config default)"
    )
    ap.add_argument("--mechanism", default="preexisting_negative_clone")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    import cd7escape as ce

    logging.getLogger("cd7escape").setLevel(logging.WARNING)
    t = time.perf_counter()
    adata = ce.datasets.simulate_patient(
        args.mechanism, seed=args.seed, n_cells=args.cells // 2, negative_fraction=0.1
    )
    adata.obs["malignant"] = adata.obs["truth_malignant"].to_numpy()
    adata.obs["cell_class"] = adata.obs["truth_cell_type"].astype(str).to_numpy()
    ce.tl.antigen_state(adata, "CD7", groupby="sample")
    print(f"{adata.n_obs} cells ({int(adata.obs['malignant'].sum())} malignant) ready in "
          f"{time.perf_counter() - t:.0f} s; {ce.__file__}")  # fmt: skip
    t, c = time.perf_counter(), cpu_seconds()
    ce.tl.subclones(adata, antigen="CD7", seed=0)
    t_clones, c_clones = time.perf_counter() - t, cpu_seconds() - c
    t, c = time.perf_counter(), cpu_seconds()
    call = ce.tl.classify_relapse(adata, antigen="CD7", seed=0, n_bootstrap=args.boot)
    t_classify, c_classify = time.perf_counter() - t, cpu_seconds() - c
    print(
        f"wall: clones {t_clones:.1f} s, classify {t_classify:.1f} s, together {t_clones + t_classify:.1f} s"
    )
    print(
        f"CPU: clones {c_clones:.1f} s, classify {c_classify:.1f} s, together {c_clones + c_classify:.1f} s"
    )
    print(f"call: {call.mechanism} ({call.confidence:.2f}) - {call.reason}")


if __name__ == "__main__":
    main()
