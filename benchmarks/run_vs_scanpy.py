"""The whole ``cd7escape run`` against the plain scanpy pipeline it wraps, on the same cells.

For each size N (cells per patient, N/2 per sample) a patient is simulated with
``cd7escape.datasets.simulate_patient`` and written as 10x HDF5 inputs plus a config
(``write_simulated``; cached in ``--workdir`` between runs). Then, each in a fresh process, the way a
user runs them:

- ``cd7escape run config.yaml --force`` (fast mode: ``integration: pca``), with per-stage timings read
  from ``provenance.json``;
- plain scanpy on the same files: read_10x_h5 → concat → normalize_total → log1p → HVG → PCA →
  neighbors → Leiden (igraph) → UMAP.

Wall time, the ratio and peak memory (``ru_maxrss`` of the child from ``os.wait4``, which covers the
process and its waited-for descendants, and psutil sampling of the process tree) are printed as a table.
``--memory-only`` runs ingest + qc + embed in one process and reports its peak RSS (the memory path of
a big patient without the full run). ``--scanpy-tuned-allocator`` gives the scanpy pipeline the
allocator settings that ``cd7escape run`` applies to itself (``cd7escape._allocator``), to see how much
of the difference they make.

The machine is shared: run big sizes one at a time under ``nice`` and report the load printed here.

    python benchmarks/run_vs_scanpy.py --sizes 20000 100000
    python benchmarks/run_vs_scanpy.py --sizes 200000 --memory-only
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

CONFIG = """antigen: CD7
car_feature: CAR_CD7
outdir: out_{integration}
samples: samples.csv
integration: {integration}
seed: 0
"""


def simulate(n_cells: int, folder: Path, *, seed: int = 0, integration: str = "pca") -> Path:
    """Simulated patient of ``n_cells`` cells as 10x inputs + config; cached in ``folder``.

    Up to 100k cells: one baseline and one relapse sample of ``n_cells / 2`` each. Beyond, the
    simulator's dense draw would need ~10 GB per 100k-cell sample, so the patient is assembled from
    several simulated pairs of samples of at most 50k cells (seeds ``seed``, ``seed + 1``, ...), all
    under patient ``P1``: e.g. 200k cells = 4 samples of 50k (2 baseline, 2 relapse).
    """
    config = folder / f"config_{integration}.yaml"
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "samples.csv").exists():
        import pandas as pd

        n_pairs = -(-n_cells // 100_000)
        sheets = []
        t = time.perf_counter()
        for i in range(n_pairs):
            pid = "P1" if i == 0 else f"P1s{i}"
            sub = folder / pid
            # a fresh process, so the simulator's memory never counts towards what is measured here
            code = (
                "import cd7escape as ce\n"
                f"a = ce.datasets.simulate_patient('antigen_downregulation', seed={seed + i}, "
                f"n_cells={n_cells // (2 * n_pairs)}, patient={pid!r})\n"
                f"ce.datasets.write_simulated(a, {str(sub)!r}, fmt='h5')\n"
            )
            subprocess.run([sys.executable, "-c", code], check=True)
            sheet = pd.read_csv(sub / "samples.csv")
            for col in ("path", "vdj"):
                sheet[col] = [f"{pid}/{v}" if isinstance(v, str) else v for v in sheet[col]]
            sheet["patient"] = "P1"
            sheets.append(sheet)
        pd.concat(sheets).to_csv(folder / "samples.csv", index=False)
        print(
            f"  simulated {n_cells} cells in {time.perf_counter() - t:.0f} s -> {folder}",
            flush=True,
        )
    config.write_text(CONFIG.format(integration=integration))
    return config


def measure(cmd: list[str], *, env: dict[str, str] | None = None, log: Path | None = None) -> dict:
    """Run ``cmd``; wall time, peak RSS of the child (wait4) and of its process tree (sampled)."""
    import psutil

    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    peak_tree = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_tree
        try:
            root = psutil.Process(proc.pid)
        except psutil.NoSuchProcess:
            return
        while not done.is_set():
            try:
                rss = root.memory_info().rss + sum(
                    c.memory_info().rss for c in root.children(recursive=True)
                )
                peak_tree = max(peak_tree, rss)
            except psutil.Error:
                pass
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    done.set()
    sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if log:
        out.close()
    if proc.returncode != 0:
        tail = log.read_text()[-3000:] if log else ""
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{tail}")
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "maxrss_gb": usage.ru_maxrss / 1e6,  # KiB on Linux
        "tree_peak_gb": peak_tree / 1e9,
    }


def plain_scanpy(folder: str, seed: int = 0, *, tuned_allocator: bool = False) -> None:
    """The pipeline a user would write in a notebook (run in its own process)."""
    import time as _time

    if (
        tuned_allocator
    ):  # the allocator settings cd7escape's command line applies (before NumPy loads)
        from cd7escape._allocator import tune_allocator

        tune_allocator()

    t0 = _time.perf_counter()
    import anndata as ad
    import pandas as pd
    import scanpy as sc

    times = {}
    sheet = pd.read_csv(Path(folder) / "samples.csv")
    t = _time.perf_counter()
    parts = {}
    for row in sheet.itertuples():
        a = sc.read_10x_h5(Path(folder) / row.path)
        a.var_names_make_unique()
        parts[row.sample] = a
    adata = ad.concat(parts, label="sample", index_unique="_")
    times["read"] = _time.perf_counter() - t
    for name, fn in (
        ("normalize_total", lambda: sc.pp.normalize_total(adata, target_sum=1e4)),
        ("log1p", lambda: sc.pp.log1p(adata)),
        ("hvg", lambda: sc.pp.highly_variable_genes(adata, n_top_genes=2000)),
        ("pca", lambda: sc.pp.pca(adata, n_comps=30, mask_var="highly_variable")),
        ("neighbors", lambda: sc.pp.neighbors(adata, n_neighbors=15)),
        (
            "leiden",
            lambda: sc.tl.leiden(adata, flavor="igraph", n_iterations=2, directed=False),
        ),
        ("umap", lambda: sc.tl.umap(adata)),
    ):
        t = _time.perf_counter()
        fn()
        times[name] = _time.perf_counter() - t
    times["total_in_process"] = _time.perf_counter() - t0
    print("SCANPY_TIMES " + json.dumps({k: round(v, 2) for k, v in times.items()}))


def embed_only(config: str) -> None:
    """ingest + qc + embed of a config in one process: the memory path of a big patient."""
    import logging
    import resource

    from cd7escape import pp
    from cd7escape._logging import logger

    logger.addHandler(logging.StreamHandler(sys.stdout))
    logger.setLevel(logging.INFO)
    from cd7escape.io import load_config, read_patient
    from cd7escape.pipeline._stages import car_features

    cfg = load_config(config)
    base = Path(config).parent
    specs = list(cfg.samples)
    for s in specs:
        for key in ("path", "vdj", "raw_path"):
            value = getattr(s, key)
            if value and not Path(value).is_absolute():
                setattr(s, key, str(base / value))
    times = {}
    t = time.perf_counter()
    adata = read_patient(specs, antigen=cfg.antigen, car_feature=cfg.car_feature)
    times["ingest"] = time.perf_counter() - t
    times["peak_gb_after_ingest"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    t = time.perf_counter()
    pp.qc(adata, **cfg.qc.model_dump(), seed=cfg.seed)
    times["qc"] = time.perf_counter() - t
    times["peak_gb_after_qc"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    t = time.perf_counter()
    pp.embed(
        adata,
        antigen=cfg.antigen,
        integration=cfg.integration,
        exclude=tuple(car_features(adata, cfg)),
        seed=cfg.seed,
        **cfg.embed.model_dump(),
    )
    times["embed"] = time.perf_counter() - t
    if "scvi_epochs" in adata.uns.get("cd7escape", {}):
        times["scvi_epochs"] = int(adata.uns["cd7escape"]["scvi_epochs"])
    times["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print("EMBED_TIMES " + json.dumps({k: round(v, 2) for k, v in times.items()}), flush=True)


def _parse(log: Path, tag: str) -> dict:
    for line in log.read_text().splitlines():
        if line.startswith(tag + " "):
            return json.loads(line[len(tag) + 1 :])
    return {}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[20_000, 100_000])
    p.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "cd7escape_bench")
    p.add_argument("--integration", choices=["pca", "scvi"], default="pca")
    p.add_argument("--threads", type=int, default=2, help="BLAS/numba threads of each child")
    p.add_argument("--memory-only", action="store_true", help="ingest+qc+embed peak RSS only")
    p.add_argument(
        "--cold-numba",
        action="store_true",
        help="cd7escape with an empty numba cache (NUMBA_CACHE_DIR in a fresh temp folder): a first run",
    )
    p.add_argument("--skip-scanpy", action="store_true")
    p.add_argument(
        "--scanpy-tuned-allocator",
        action="store_true",
        help="run the scanpy pipeline with cd7escape's allocator settings too (cd7escape._allocator)",
    )
    p.add_argument("--skip-cd7escape", action="store_true")
    p.add_argument("--_scanpy-child", dest="scanpy_child", help=argparse.SUPPRESS)
    p.add_argument("--_tuned", dest="tuned", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--_embed-child", dest="embed_child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.scanpy_child:
        return plain_scanpy(args.scanpy_child, tuned_allocator=args.tuned)
    if args.embed_child:
        return embed_only(args.embed_child)

    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[var] = str(args.threads)
    load = os.getloadavg()
    print(
        f"# {os.cpu_count()} cores, load average {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}, "
        f"{args.threads} threads per child, nice {os.nice(0)}",
        flush=True,
    )
    rows = []
    for n in args.sizes:
        folder = args.workdir / f"n{n}"
        config = simulate(n, folder, integration=args.integration)
        row: dict = {"cells": n}
        if args.memory_only:
            m = measure(
                [sys.executable, __file__, "--_embed-child", str(config)],
                env=env,
                log=folder / "embed_only.log",
            )
            row.update(embed=m, embed_times=_parse(folder / "embed_only.log", "EMBED_TIMES"))
            print(f"  {n}: ingest+qc+embed {json.dumps(row['embed_times'])} {m}", flush=True)
            rows.append(row)
            continue
        if not args.skip_scanpy:
            m = measure(
                [sys.executable, __file__, "--_scanpy-child", str(folder)]
                + (["--_tuned"] if args.scanpy_tuned_allocator else []),
                env=env,
                log=folder / "scanpy.log",
            )
            row.update(scanpy=m, scanpy_steps=_parse(folder / "scanpy.log", "SCANPY_TIMES"))
            print(
                f"  {n}: scanpy {m['wall_s']:.1f} s {json.dumps(row['scanpy_steps'])}", flush=True
            )
        if not args.skip_cd7escape:
            cli = Path(sys.executable).with_name("cd7escape")
            run_env = dict(env)
            if args.cold_numba:
                run_env["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="numba_cold_")
            m = measure(
                [str(cli), "run", str(config), "--force", "--verbose"],
                env=run_env,
                log=folder / "cd7escape.log",
            )
            prov = json.loads((folder / f"out_{args.integration}" / "provenance.json").read_text())
            row.update(cd7escape=m, stages=prov["patients"]["P1"]["stages"])
            print(f"  {n}: cd7escape {m['wall_s']:.1f} s {json.dumps(row['stages'])}", flush=True)
        rows.append(row)
    (args.workdir / "results.json").write_text(json.dumps(rows, indent=2))
    if not args.memory_only:
        _table(rows)


def _table(rows: list[dict]) -> None:
    print(
        "\n| cells | scanpy wall s | cd7escape wall s | ratio | scanpy peak GB | cd7escape peak GB |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        s, c = r.get("scanpy"), r.get("cd7escape")
        ratio = f"{c['wall_s'] / s['wall_s']:.2f}" if s and c else "-"
        print(
            f"| {r['cells']} | {s['wall_s']:.1f} | " if s else f"| {r['cells']} | - | ",
            end="",
        )
        print(f"{c['wall_s']:.1f} | " if c else "- | ", end="")
        print(f"{ratio} | ", end="")
        print(f"{s['maxrss_gb']:.2f} | " if s else "- | ", end="")
        print(f"{c['maxrss_gb']:.2f} |" if c else "- |")
    stages = [r for r in rows if "stages" in r]
    if stages:
        names = list(stages[0]["stages"])
        print("\n| cells | " + " | ".join(names) + " |")
        print("|---:|" + "---:|" * len(names))
        for r in stages:
            print(
                f"| {r['cells']} | " + " | ".join(str(r["stages"].get(k, "")) for k in names) + " |"
            )


if __name__ == "__main__":
    main()
