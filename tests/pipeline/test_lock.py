"""One run per patient folder (pipeline/_lock.py): a held lock refuses a second run (exit 2, naming the
holder), a dead holder's lock is taken over, and two real ``cd7escape run`` processes started at once on
one outdir leave it readable."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import anndata as ad
import pytest
import yaml

import cd7escape as ce
from cd7escape._errors import InputError
from cd7escape.pipeline import _lock
from cd7escape.pipeline._lock import LOCK_NAME, LockHeld, acquire, acquire_all

CLI = [sys.executable, "-m", "cd7escape.cli"]

# a process holding the lock of one patient folder until it is killed or its stdin closes
HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from cd7escape.pipeline._lock import acquire
    lock = acquire(Path(sys.argv[1]))
    print("held", flush=True)
    sys.stdin.read()
    lock.release()
    """
)


def _hold(pdir: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(pdir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory) -> Path:
    """A patient of 2 x 50 cells: both samples fail QC (min_cells 200), so a real run takes seconds."""
    folder = tmp_path_factory.mktemp("tiny")
    adata = ce.datasets.simulate_patient("antigen_downregulation", seed=1, n_cells=50)
    ce.datasets.write_simulated(adata, folder / "data")
    config = folder / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "antigen": "CD7",
                "samples": str(folder / "data" / "samples.csv"),
                "outdir": "out",
                "embed": {"umap": False},
                "qc": {"doublets": False, "min_cells": 200},
                "classify": {"n_bootstrap": 0},
            }
        )
    )
    return config


def test_a_second_lock_in_the_same_process_is_refused(tmp_path):
    with acquire(tmp_path / "P1") as lock:
        info = json.loads(lock.path.read_text())
        assert info["pid"] == os.getpid()
        assert info["host"] == socket.gethostname()
        assert {"started", "command", "process_start"} <= set(info)
        with pytest.raises(LockHeld, match=f"pid {os.getpid()} on host"):
            acquire(tmp_path / "P1")
    assert not (tmp_path / "P1" / LOCK_NAME).exists()  # released: removed
    acquire(tmp_path / "P1").release()  # and free again


def test_acquire_all_refuses_every_held_patient_and_keeps_none(tmp_path):
    held = acquire(tmp_path / "P2")
    try:
        with pytest.raises(InputError) as err:
            acquire_all(tmp_path, ["P1", "P2", "P3"])
        [problem] = err.value.problems
        assert problem.file == str(tmp_path / "P2" / LOCK_NAME)
        assert "P2" in str(problem)
        # the free patients were not left locked
        for pid in ("P1", "P3"):
            assert not (tmp_path / pid / LOCK_NAME).exists()
            assert not (tmp_path / pid).exists()  # created for the lock, removed again
    finally:
        held.release()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_stale_lock_of_a_dead_process_on_this_host_is_taken_over(tmp_path, caplog):
    pdir = tmp_path / "P1"
    pdir.mkdir()
    stale = {"host": socket.gethostname(), "pid": _dead_pid(), "started": "yesterday"}
    (pdir / LOCK_NAME).write_text(json.dumps(stale))
    with caplog.at_level("WARNING", logger="cd7escape"), acquire(pdir) as lock:
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()
    assert "taking over the stale lock" in caplog.text
    assert f"pid {stale['pid']}" in caplog.text


def test_a_reused_pid_does_not_keep_a_lock_alive(tmp_path):
    """The pid is alive (this process) but its start time is not the holder's: stale."""
    pdir = tmp_path / "P1"
    pdir.mkdir()
    stale = {"host": socket.gethostname(), "pid": os.getppid(), "process_start": -1}
    (pdir / LOCK_NAME).write_text(json.dumps(stale))
    acquire(pdir).release()


def test_a_live_holder_without_flock_is_respected(tmp_path, monkeypatch):
    """File systems without a lock manager: the content decides (a live pid on this host holds it)."""
    import fcntl

    def no_flock(fd, op):
        raise OSError(_lock.errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    pdir = tmp_path / "P1"
    pdir.mkdir()
    parent = {
        "host": socket.gethostname(),
        "pid": os.getppid(),
        "process_start": _lock._process_start(os.getppid()),
    }
    (pdir / LOCK_NAME).write_text(json.dumps(parent))
    with pytest.raises(LockHeld, match=f"pid {os.getppid()}"):
        acquire(pdir)
    (pdir / LOCK_NAME).write_text(json.dumps({**parent, "pid": _dead_pid()}))
    lock = acquire(pdir)
    assert lock.fd is None
    lock.release()
    assert not (pdir / LOCK_NAME).exists()


def test_a_lock_from_another_host_holds_until_its_heartbeat_stops(tmp_path, caplog):
    pdir = tmp_path / "P1"
    pdir.mkdir()
    path = pdir / LOCK_NAME
    path.write_text(json.dumps({"host": "node-elsewhere", "pid": 1234, "started": "now"}))
    with pytest.raises(LockHeld, match="node-elsewhere") as err:
        acquire(pdir)
    assert str(path) in str(err.value)  # says which file to delete
    old = time.time() - _lock.STALE_AFTER - 60
    os.utime(path, (old, old))
    with caplog.at_level("WARNING", logger="cd7escape"):
        acquire(pdir).release()
    assert "untouched for" in caplog.text


def test_the_holder_touches_its_lock(tmp_path, monkeypatch):
    monkeypatch.setattr(_lock, "HEARTBEAT", 0.05)
    with acquire(tmp_path / "P1") as lock:
        old = time.time() - 1000
        os.utime(lock.path, (old, old))
        time.sleep(0.5)
        assert time.time() - lock.path.stat().st_mtime < 10


# --- real processes ------------------------------------------------------------------------------


def test_a_run_on_a_folder_another_process_holds_exits_2(tiny_config, tmp_path):
    out = tmp_path / "out"
    holder = _hold(out / "P1")
    try:
        proc = subprocess.run(
            [*CLI, "run", str(tiny_config), "--outdir", str(out)], capture_output=True, text=True
        )
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert f"pid {holder.pid} on host {socket.gethostname()}" in proc.stderr
    assert str(out / "P1" / LOCK_NAME) in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["P1"]  # nothing written: no log, no summary
    assert list((out / "P1").iterdir()) == []  # the holder released its lock on exit
    # once the holder is gone the same command runs
    proc = subprocess.run(
        [*CLI, "run", str(tiny_config), "--outdir", str(out)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (out / "P1" / LOCK_NAME).exists()


def test_a_killed_holder_does_not_block_the_next_run(tiny_config, tmp_path):
    out = tmp_path / "out"
    holder = _hold(out / "P1")
    holder.send_signal(signal.SIGKILL)  # no cleanup: the file stays, naming a dead process
    holder.wait(timeout=30)
    assert (out / "P1" / LOCK_NAME).exists()
    proc = subprocess.run(
        [*CLI, "run", str(tiny_config), "--outdir", str(out)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "taking over the stale lock" in proc.stderr  # said before run.log is opened
    assert not (out / "P1" / LOCK_NAME).exists()


def test_two_runs_started_at_once_leave_a_readable_outdir(tiny_config, tmp_path):
    out = tmp_path / "out"
    cmd = [*CLI, "run", str(tiny_config), "--outdir", str(out), "--force"]
    procs = [subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes in ([0, 0], [0, 2]), results  # one after the other, or the second refused
    for code, err in results:
        assert "Traceback" not in err
        if code == 2:
            assert "another cd7escape run" in err
    result = json.loads((out / "P1" / "result.json").read_text())
    assert result["mechanism"] == "indeterminate"
    assert ad.read_h5ad(out / "P1" / "cells.h5ad").n_obs >= 0
    assert (out / "cohort_summary.tsv").read_text().startswith("patient\t")
    assert not list(out.rglob("*.tmp"))
    assert not (out / "P1" / LOCK_NAME).exists()
