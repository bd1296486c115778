"""Save the trace's inputs of semi-synthetic patients once, then replay its decision in seconds (issue 19).

A change to the trace (``tl/_clones/_trace.py``, ``tl/_classify/_trace_decision.py``) otherwise costs a
full ``semisynthetic.py`` run (about 20 minutes for the 90 P10 patients on 2 cores) before its first
number. ``save`` runs the pipeline of ``semisynthetic.py`` on the chosen patients without labels and without
bootstrap, and pickles what :func:`~cd7escape.tl._classify._trace_decision.decide_by_trace` receives for the
point estimate (the cells, the antigen fits, the subclone routes' call, the parameters) with each cell's
truth. ``replay`` re-decides every saved patient with the source on ``PYTHONPATH`` (or the editable
install) and prints the trace's ``π`` and interval, its effective size and call, beside the saved call, the
oracle's ``π`` and the truth. Point estimates only: the confidences and the final call after the bootstrap
need the full benchmark, which stays the measure (docs/validation.md, stop 41, used this to screen two
remedies before running it).

    nice python benchmarks/trace_replay.py save --dir /tmp/trace_inputs [--pools P10 --blasts 150,125
        --seeds 6] [--only IDS]
    python benchmarks/trace_replay.py replay --dir /tmp/trace_inputs

Needs ../shared/data/carpall (as ``semisynthetic.py``). Nothing is written into the repository.
"""

from __future__ import annotations

import argparse
import copy
import pickle
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))


def save(out: Path, pools: list[str], seeds: int, blasts: tuple[int, int], only: set[int] | None):
    """Run the chosen patients (no labels, no bootstrap) and pickle the trace's inputs, one file each."""
    import semisynthetic as S

    import cd7escape.tl._classify._relapse as R

    out.mkdir(parents=True, exist_ok=True)
    state: dict = {}
    space, decide, score = R._trace_space, R.decide_by_trace, S.score

    def trace_space(adata, cells):
        state["obs"] = adata.obs_names.to_numpy()[cells]
        return space(adata, cells)

    def decide_by_trace(d, P, res, **kw):
        # the point estimate is the call on the original cells (replicates draw copies)
        if (
            "d" not in state
            and d.orig is not None
            and np.array_equal(d.orig, np.arange(d.orig.size))
        ):
            state.update(d=copy.copy(d), P=dict(P), kw=kw, res=copy.deepcopy(res))
        return decide(d, P, res, **kw)

    def scored(row, labels, made, truth, adata, call, *args, **kwargs):
        result = score(row, labels, made, truth, adata, call, *args, **kwargs)
        if "d" in state:  # no trace where nothing was negative at relapse
            state["truth"] = truth.reindex(state["obs"])
            state["row"] = result
            with open(out / f"{row['id']}.pkl", "wb") as f:
                pickle.dump(state, f)
        print(row["id"], result["group"], result["call"], flush=True)
        state.clear()
        return result

    R._trace_space, R.decide_by_trace, S.score = trace_space, decide_by_trace, scored
    for row in S.grid(pools, seeds):
        if only is None or row["id"] in only:
            row = {
                **row,
                "boot": 0,
                "n_baseline": blasts[0],
                "n_relapse": blasts[1],
                "labels": (False,),
            }
            S.run_one(row, positive_min_rate=0.5)


def replay(folder: Path) -> pd.DataFrame:
    """Re-decide every saved patient with the current source: one row each."""
    from cd7escape.tl._classify._trace_decision import decide_by_trace

    rows = []
    for path in sorted(folder.glob("*.pkl"), key=lambda p: int(p.stem)):
        with open(path, "rb") as f:
            saved = pickle.load(f)
        res = copy.deepcopy(saved["res"])
        decide_by_trace(saved["d"], saved["P"], res, **saved["kw"])
        t, row = res["trace"], saved["row"]
        truth = row["mechanism"]  # the design's truth, as semisynthetic.py scored it
        rows.append({
            "id": row["id"], "group": row["group"], "negative_fraction": row["negative_fraction"],
            "fold": row["fold"], "truth": truth, "saved_call": row["call"], "call": res["mechanism"],
            "rule": res["rule"], "right": res["mechanism"] == truth,
            "pi_baseline": round(float(saved["kw"]["gb"]["pi"]), 3), "pi": round(float(t["pi"]), 3),
            "ci_low": round(float(t["ci_low"]), 3), "ci_high": round(float(t["ci_high"]), 3),
            "n_effective": t["n_effective"], "oracle_pi": row.get("oracle_pi"),
        })  # fmt: skip
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("what", choices=("save", "replay"))
    ap.add_argument("--dir", required=True, help="folder of the saved inputs")
    ap.add_argument("--pools", default="P10")
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--blasts", default="150,125", help="baseline,relapse blasts")
    ap.add_argument("--only", default=None, help="comma-separated patient ids")
    args = ap.parse_args()
    folder = Path(args.dir)
    if args.what == "save":
        n_b, n_r = (int(x) for x in args.blasts.split(","))
        only = None if args.only is None else {int(x) for x in args.only.split(",")}
        save(folder, args.pools.split(","), args.seeds, (n_b, n_r), only)
        return
    df = replay(folder)
    if df.empty:
        sys.exit(f"no saved trace inputs in {folder}")
    pd.set_option("display.width", 250)
    print(df.to_string(index=False))
    print(f"\nright {int(df['right'].sum())}/{len(df)}; "
          f"wrong calls (not indeterminate) {int(((df['call'] != 'indeterminate') & ~df['right']).sum())}")  # fmt: skip


if __name__ == "__main__":
    main()
