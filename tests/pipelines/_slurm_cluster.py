"""A throw-away single-node SLURM cluster for tests: munged, slurmctld and slurmd from Debian's packages.

Everything (munge key and socket, ``slurm.conf``, state, spool, logs) lives in one temporary folder; the
daemons run in the foreground as children of the test process, so :meth:`SlurmCluster.stop` ends exactly
the processes it started. Clients find the cluster through ``SLURM_CONF`` (see :meth:`SlurmCluster.env`).
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

#: Debian packages that give a single-node SLURM
PACKAGES = ("slurm-wlm", "munge")
#: binaries the cluster needs (daemons and the clients the executor plugin calls)
BINARIES = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol")
#: SLURM clients given a shim that sets SLURM_CONF (see start_cluster)
CLIENTS = (
    "srun",
    "sbatch",
    "squeue",
    "sinfo",
    "scontrol",
    "scancel",
    "sacct",
    "salloc",
    "sshare",
    "sacctmgr",
)
#: memory left to the operating system and the test process (MB)
MEMORY_MARGIN_MB = 1024


class Unavailable(RuntimeError):
    """SLURM cannot be brought up here; the message says why (the test skips with it)."""


def _missing() -> list[str]:
    return [b for b in BINARIES if shutil.which(b) is None]


def ensure_installed(*, install: bool = True, timeout: float = 600) -> None:
    """Install :data:`PACKAGES` with apt-get when a binary is missing; :class:`Unavailable` when impossible."""
    if not _missing():
        return
    if not install:
        raise Unavailable(
            f"SLURM binaries missing ({', '.join(_missing())}); installing was not allowed"
        )
    if os.geteuid() != 0:
        raise Unavailable(
            f"SLURM binaries missing ({', '.join(_missing())}) and not root to apt-get install"
        )
    if shutil.which("apt-get") is None:
        raise Unavailable(f"SLURM binaries missing ({', '.join(_missing())}) and no apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *PACKAGES]):
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Unavailable(f"'{' '.join(cmd)}' took over {timeout:.0f} s") from None
        if proc.returncode != 0:
            raise Unavailable(f"'{' '.join(cmd)}' failed: {proc.stderr.strip()[-500:]}")
    if _missing():
        raise Unavailable(f"installed {PACKAGES} but still missing: {', '.join(_missing())}")


def slurm_version() -> tuple[int, int]:
    """(major, minor) of the installed SLURM, e.g. (22, 5)."""
    out = subprocess.run(["slurmd", "-V"], capture_output=True, text=True).stdout
    match = re.search(r"(\d+)\.(\d+)", out)
    if not match:
        raise Unavailable(f"cannot read the SLURM version from 'slurmd -V': {out!r}")
    return int(match.group(1)), int(match.group(2))


def real_memory_mb(margin_mb: int = MEMORY_MARGIN_MB) -> int:
    """MemTotal of /proc/meminfo in MB, less ``margin_mb`` (slurmd drains a node that reports less)."""
    text = Path("/proc/meminfo").read_text()
    total_kb = int(re.search(r"^MemTotal:\s+(\d+)\s+kB", text, re.M).group(1))
    return max(total_kb // 1024 - margin_mb, 512)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def slurm_conf(root: Path, *, host: str, cpus: int, memory_mb: int, munge_socket: Path) -> str:
    """A ``slurm.conf`` for one node (this host) and one default partition ``debug``, no accounting."""
    select = "select/cons_tres" if slurm_version() >= (19, 5) else "select/linear"
    params = "CR_Core_Memory" if select == "select/cons_tres" else "CR_Memory"
    lines = {
        "ClusterName": "cd7test",
        "SlurmctldHost": f"{host}(127.0.0.1)",
        "SlurmctldPort": _free_port(),
        "SlurmdPort": _free_port(),
        "SlurmUser": "root",
        "SlurmdUser": "root",
        "AuthType": "auth/munge",
        "CredType": "cred/munge",
        "AuthInfo": f"socket={munge_socket}",
        "StateSaveLocation": root / "state",
        "SlurmdSpoolDir": root / "spool",
        "SlurmctldPidFile": root / "run" / "slurmctld.pid",
        "SlurmdPidFile": root / "run" / "slurmd.pid",
        "SlurmctldLogFile": root / "log" / "slurmctld.log",
        "SlurmdLogFile": root / "log" / "slurmd.log",
        "ProctrackType": "proctrack/linuxproc",
        "TaskPlugin": "task/none",
        "SelectType": select,
        "SelectTypeParameters": params,
        "SchedulerType": "sched/backfill",
        "SwitchType": "switch/none",
        "MpiDefault": "none",
        "ReturnToService": 2,
        # no accounting database: sacct cannot see jobs, so snakemake must poll squeue
        "AccountingStorageType": "accounting_storage/none",
        # memory enforced as on a real cluster: a job step above its --mem is killed (OUT_OF_MEMORY)
        "JobAcctGatherType": "jobacct_gather/linux",
        "JobAcctGatherParams": "OverMemoryKill",
        "JobAcctGatherFrequency": "task=2",
        "JobCompType": "jobcomp/none",
        # finished jobs stay visible to squeue for 5 min (the executor plugin needs >= 120 s)
        "MinJobAge": 300,
        # trust the node line below rather than the hardware slurmd detects (containers, CPU quotas)
        "SlurmdParameters": "config_overrides",
        "SlurmctldTimeout": 30,
        "SlurmdTimeout": 60,
        "InactiveLimit": 0,
        "KillWait": 5,
    }
    text = "\n".join(f"{k}={v}" for k, v in lines.items())
    return (
        f"{text}\n"
        f"NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN\n"
        "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n"
    )


@dataclass
class SlurmCluster:
    """A running single-node cluster; :meth:`stop` cancels its jobs and ends its three daemons."""

    root: Path
    conf: Path
    host: str
    cpus: int
    memory_mb: int
    remove_root: bool = False
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        """``os.environ`` with ``SLURM_CONF`` pointing at this cluster and its client shims first on PATH."""
        path = f"{self.root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
        return {**os.environ, "SLURM_CONF": str(self.conf), "PATH": path}

    def run(self, *cmd: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(cmd, capture_output=True, text=True, env=self.env(), timeout=timeout)

    def logs(self, n_chars: int = 3000) -> str:
        parts = []
        for path in sorted((self.root / "log").glob("*.log")):
            parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-n_chars:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        """Cancel every job of this cluster, then end slurmd, slurmctld and munged (in that order)."""
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            try:
                self.run("scancel", "--full", "--user", str(os.getuid()), timeout=20)
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    out = self.run(
                        "squeue", "--noheader", "--states=RUNNING,COMPLETING", timeout=10
                    )
                    if out.returncode != 0 or not out.stdout.strip():
                        break
                    time.sleep(1)
            except (OSError, subprocess.TimeoutExpired):
                pass
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self.remove_root:
            shutil.rmtree(self.root, ignore_errors=True)


def _wait(predicate, *, timeout: float, what: str, cluster: SlurmCluster) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, proc in cluster.procs.items():
            if proc.poll() is not None:
                raise Unavailable(
                    f"{name} exited ({proc.returncode}) before {what}\n{cluster.logs()}"
                )
        if predicate():
            return
        time.sleep(0.5)
    raise Unavailable(f"timed out after {timeout:.0f} s waiting for {what}\n{cluster.logs()}")


def start_cluster(root: Path | None = None, *, timeout: float = 60) -> SlurmCluster:
    """munged, slurmctld and slurmd on this host under ``root``; returns once ``sinfo`` shows the node idle.

    ``root`` (default: a new folder in the system's temporary folder, removed by :meth:`SlurmCluster.stop`)
    must be reachable by every user (munged refuses a socket below a folder others cannot enter, such as
    pytest's ``tmp_path``). Raises :class:`Unavailable` (after stopping whatever it started) when a daemon
    does not come up.
    """
    if os.geteuid() != 0:
        raise Unavailable("slurmd runs jobs as their user and must start as root; not root")
    owned = root is None
    root = Path(tempfile.mkdtemp(prefix="cd7escape-slurm-")) if root is None else Path(root)
    blocked = [p for p in (root, *root.parents) if p.exists() and not p.stat().st_mode & 0o001]
    if blocked and blocked[0] != root:
        raise Unavailable(f"munged needs a socket folder every user can enter; {blocked[0]} is not")
    for sub in ("munge", "munge_run", "state", "spool", "run", "log"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)  # munged: every folder on its socket's path must be searchable by all
    (root / "munge").chmod(0o700)
    (root / "munge_run").chmod(0o755)
    key = root / "munge" / "munge.key"
    subprocess.run(["mungekey", "--create", "--keyfile", str(key)], check=True, capture_output=True)
    key.chmod(0o600)
    munge_socket = root / "munge_run" / "munge.socket"

    host = subprocess.run(["hostname", "-s"], capture_output=True, text=True).stdout.strip()
    host = host or socket.gethostname().split(".")[0]
    cpus = os.cpu_count() or 1
    memory_mb = real_memory_mb()
    conf = root / "slurm.conf"
    conf.write_text(
        slurm_conf(root, host=host, cpus=cpus, memory_mb=memory_mb, munge_socket=munge_socket)
    )
    # snakemake-executor-plugin-slurm-jobstep (0.6.1) drops every SLURM_* variable, SLURM_CONF included,
    # before its nested `srun` inside a job: on a real cluster srun finds /etc/slurm/slurm.conf, here the
    # clients on PATH are shims that point SLURM_CONF at this cluster's file.
    (root / "bin").mkdir(exist_ok=True)
    for client in CLIENTS:
        real = shutil.which(client)
        if real:
            shim = root / "bin" / client
            shim.write_text(f'#!/bin/sh\nSLURM_CONF="{conf}" exec "{real}" "$@"\n')
            shim.chmod(0o755)
    cluster = SlurmCluster(
        root=root, conf=conf, host=host, cpus=cpus, memory_mb=memory_mb, remove_root=owned
    )

    def spawn(name: str, cmd: list[str]) -> None:
        log = open(root / "log" / f"{name}.stdout.log", "w")  # noqa: SIM115 - lives with the process
        cluster.procs[name] = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=cluster.env(), start_new_session=True
        )

    atexit.register(cluster.stop)  # a safety net; the caller stops it (stop() is idempotent)
    try:
        spawn(
            "munged",
            [
                "munged",
                "--foreground",
                f"--socket={munge_socket}",
                f"--key-file={key}",
                f"--log-file={root / 'log' / 'munged.log'}",
                f"--pid-file={root / 'munge_run' / 'munged.pid'}",
                f"--seed-file={root / 'munge' / 'munged.seed'}",
            ],
        )
        _wait(munge_socket.exists, timeout=timeout, what="munged's socket", cluster=cluster)
        spawn("slurmctld", ["slurmctld", "-D", "-i", "-f", str(conf)])
        _wait(
            lambda: cluster.run("scontrol", "ping", timeout=10).stdout.count("UP") > 0,
            timeout=timeout,
            what="slurmctld to answer 'scontrol ping'",
            cluster=cluster,
        )
        spawn("slurmd", ["slurmd", "-D", "-f", str(conf), "-N", host])

        def idle() -> bool:
            out = cluster.run("sinfo", "--noheader", "--Node", "--format=%t", timeout=10).stdout
            return out.strip().startswith("idle")

        _wait(idle, timeout=timeout, what=f"node {host} to be idle in sinfo", cluster=cluster)
    except BaseException:
        cluster.stop()
        raise
    return cluster
