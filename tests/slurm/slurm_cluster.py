"""A real two-node Slurm cluster on this one machine, for the Slurm tests.

Starts munged (own key and socket), slurmctld and two `slurmd -N n1/n2`
daemons from a slurm.conf written into a temporary directory (SLURM_CONF
points there: /etc is never touched), waits for two idle nodes, and stops
exactly the daemons it started, by the pids in their pid files.
It must not know anything about distgan: it only runs Slurm.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

# Binaries a test run needs; the daemons live in /usr/sbin on Debian.
REQUIRED_BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "scontrol", "squeue", "sinfo", "scancel")
SBIN_PATH = "/usr/sbin:/sbin"

# Job states after which a job never runs again (a requeued job goes back to PENDING instead).
FINAL_STATES = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "BOOT_FAIL",
        "DEADLINE",
        "PREEMPTED",
    }
)

SLURM_CONF_TEMPLATE = """\
# Written by tests/slurm/cluster.py: a throwaway two-node cluster on one host.
ClusterName=distgantest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
AuthType=auth/munge
CredType=cred/munge
# cred_expire also sets how long a requeued job waits before it may start again (default 120 s).
AuthInfo=socket={root}/munge.sock,cred_expire=5
SlurmUser=root
SlurmdUser=root
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool/%n
SlurmctldPidFile={root}/run/slurmctld.pid
SlurmdPidFile={root}/run/slurmd.%n.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.%n.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig={root}/plugstack.conf
# The FACTS.md recipe: no cgroups in a container, so track processes by parent pid.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
# Requeue must be allowed, and fast: short kill wait, quick scheduling passes.
JobRequeue=1
KillWait=5
SchedulerParameters=sched_interval=2
MessageTimeout=20
# No slurmdbd here: keep finished jobs visible to `scontrol show job` for an hour and
# write one completion record per job end (including requeues) to a text file.
MinJobAge=3600
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={root}/log/jobcomp.log
NodeName=n[1-2] NodeHostname={host} NodeAddr=127.0.0.1 Port={node_port}-{node_port_last} CPUs={cpus} State=UNKNOWN
PartitionName=debug Nodes=n[1-2] Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
"""


def missing_binaries() -> list[str]:
    """Slurm/munge executables not found on PATH (plus the sbin directories)."""
    search = os.environ.get("PATH", "") + os.pathsep + SBIN_PATH
    return [name for name in REQUIRED_BINARIES if shutil.which(name, path=search) is None]


def _free_port_block(count: int, start: int = 17001, stop: int = 40000) -> int:
    """First port p >= start such that p .. p+count-1 are all free on 127.0.0.1."""
    for base in range(start, stop, count):
        socks = []
        try:
            for port in range(base, base + count):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError(f"no block of {count} free ports in {start}..{stop}")


@dataclass
class LocalSlurmCluster:
    """Two slurmd nodes (n1, n2) and one slurmctld on this host, configured under `root`."""

    root: Path
    cpus_per_node: int = 4  # more than this host has: jobs may share cores (oversubscribe)
    host: str = field(default_factory=lambda: socket.gethostname().split(".")[0])
    env: dict[str, str] = field(default_factory=dict)
    _pid_files: list[Path] = field(default_factory=list)

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def log_dir(self) -> Path:
        return self.root / "log"

    # ---- lifecycle -------------------------------------------------------------------------------
    def start(self, timeout_s: float = 60.0) -> None:
        for sub in ("state", "spool", "run", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        # munged insists that the socket's directory be reachable by everyone.
        self.root.chmod(0o755)
        # Drop SLURM_* from an enclosing job (pytest run inside Slurm): they would leak into our jobs.
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SLURM_")},
            "SLURM_CONF": str(self.conf),
            "PATH": os.environ.get("PATH", "") + os.pathsep + SBIN_PATH,
        }
        self._start_munge()
        port = _free_port_block(3)
        (self.root / "plugstack.conf").write_text("")
        self.conf.write_text(
            SLURM_CONF_TEMPLATE.format(
                host=self.host,
                root=self.root,
                ctld_port=port,
                node_port=port + 1,
                node_port_last=port + 2,
                cpus=self.cpus_per_node,
            )
        )
        self._daemon(["slurmctld", "-f", str(self.conf)], self.root / "run/slurmctld.pid")
        for node in ("n1", "n2"):
            self._daemon(["slurmd", "-f", str(self.conf), "-N", node], self.root / f"run/slurmd.{node}.pid")
        self.wait_idle_nodes(2, timeout_s)

    def _start_munge(self) -> None:
        key = self.root / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        args = [
            "munged",
            "--force",  # we run as root, which munged refuses without --force
            f"--socket={self.root}/munge.sock",
            f"--key-file={key}",
            f"--log-file={self.log_dir}/munged.log",
            f"--seed-file={self.root}/run/munged.seed",
            f"--pid-file={self.root}/run/munged.pid",
        ]
        self._daemon(args, self.root / "run/munged.pid")

    def _daemon(self, args: list[str], pid_file: Path, timeout_s: float = 15.0) -> None:
        """Run a self-daemonizing program and remember its pid file (we stop only what we started)."""
        self._pid_files.append(pid_file)
        proc = subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=timeout_s)
        if proc.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({proc.returncode}): {proc.stderr.strip()}\n{self.logs()}")
        deadline = time.monotonic() + timeout_s
        while not (pid_file.exists() and pid_file.read_text().strip()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{args[0]} wrote no pid file {pid_file}\n{self.logs()}")
            time.sleep(0.1)

    def wait_idle_nodes(self, count: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        out = ""
        while time.monotonic() < deadline:
            proc = self.run(["sinfo", "--noheader", "--Node", "-o", "%N %t"], check=False)
            out = proc.stdout
            idle = [line for line in out.splitlines() if line.split()[-1:] == ["idle"]]
            if len(idle) >= count:
                return
            time.sleep(0.5)
        raise RuntimeError(
            f"expected {count} idle nodes within {timeout_s}s, sinfo says:\n{out}\n{self.logs()}"
        )

    def stop(self, timeout_s: float = 20.0) -> None:
        """End this cluster's jobs, then SIGTERM each daemon we started (by its recorded pid),
        newest first, and SIGKILL stragglers. slurmd does not take running jobs down with it."""
        if self.conf.exists() and self._pid_files:
            self.run(["scancel", "--full", f"--user={os.getuid()}"], check=False)
            deadline = time.monotonic() + timeout_s
            while self.run(["squeue", "--noheader"], check=False).stdout.strip():
                if time.monotonic() > deadline:
                    break
                time.sleep(0.25)
            self.kill_job_processes(None)
        pids = []
        for pid_file in reversed(self._pid_files):
            try:
                pids.append(int(pid_file.read_text().split()[0]))
            except (OSError, ValueError, IndexError):
                continue
        for pid in pids:
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in pids:
            if _alive(pid):
                _signal(pid, signal.SIGKILL)
        self._pid_files.clear()

    # ---- client helpers --------------------------------------------------------------------------
    def run(self, args: list[str], check: bool = True, timeout_s: float = 30.0, **env: str):
        proc = subprocess.run(
            args, env={**self.env, **env}, capture_output=True, text=True, timeout=timeout_s
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def job_fields(self, job_id: int) -> dict[str, str]:
        """`scontrol show job -o` as a dict (JobState, Restarts, ExitCode, ...)."""
        line = self.run(["scontrol", "show", "job", "-o", str(job_id)]).stdout.strip()
        fields = {}
        for token in line.split():
            key, sep, value = token.partition("=")
            if sep:
                fields[key] = value
        return fields

    def submit(
        self, script: Path, args: list[str], nodes: int, output: Path, cwd: Path, env: dict[str, str]
    ) -> int:
        """`sbatch` a script on `nodes` nodes; returns the job id."""
        proc = self.run(
            [
                "sbatch",
                "--parsable",
                f"--nodes={nodes}",
                f"--output={output}",
                f"--chdir={cwd}",
                str(script),
                *args,
            ],
            **env,
        )
        return int(proc.stdout.strip().split(";")[0])

    def wait_job(self, job_id: int, timeout_s: float, until=None) -> dict[str, str]:
        """Poll `scontrol show job` until `until(fields)` (default: the job ended for good)."""
        until = until or (lambda f: f.get("JobState") in FINAL_STATES)
        deadline = time.monotonic() + timeout_s
        while True:
            fields = self.job_fields(job_id)
            if until(fields):
                return fields
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"job {job_id} still {fields.get('JobState')} after {timeout_s}s:\n{fields}"
                )
            time.sleep(0.25)

    def kill_job_processes(self, job_id: int | None) -> list[int]:
        """SIGKILL every process of a job (None: of any job of this cluster), workers first.

        This is a node dying, not a cancel: `scancel --signal=KILL` would not do, Slurm turns it
        into a cancel that sends SIGTERM first. Job processes are found by SLURM_JOB_ID and this
        cluster's SLURM_CONF in their environment, so nothing else on the machine is touched.
        """
        job_mark = b"SLURM_JOB_ID=" if job_id is None else f"SLURM_JOB_ID={job_id}".encode()
        conf_mark = f"SLURM_CONF={self.conf}".encode()
        found: list[tuple[bool, int]] = []
        for proc_dir in Path("/proc").iterdir():
            if not proc_dir.name.isdigit() or int(proc_dir.name) == os.getpid():
                continue
            try:
                environ = (proc_dir / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            is_job = any(v == job_mark or (job_id is None and v.startswith(job_mark)) for v in environ)
            if is_job and conf_mark in environ:
                is_worker = any(v.startswith(b"LOCAL_RANK=") for v in environ)
                found.append((not is_worker, int(proc_dir.name)))
        pids = [pid for _, pid in sorted(found)]
        for pid in pids:
            _signal(pid, signal.SIGKILL)
        return pids

    def jobcomp_records(self, job_id: int) -> list[str]:
        """Lines of the jobcomp/filetxt log for this job: one per run that ended (requeues included)."""
        log = self.log_dir / "jobcomp.log"
        if not log.exists():
            return []
        return [line for line in log.read_text().splitlines() if f"JobId={job_id} " in line]

    def logs(self, tail: int = 30) -> str:
        parts = []
        for path in sorted(self.log_dir.glob("*.log")):
            lines = path.read_text(errors="replace").splitlines()[-tail:]
            parts.append(f"--- {path.name}\n" + "\n".join(lines))
        return "\n".join(parts)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours would still answer; daemons are not our children, so this is real.
    return True


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
