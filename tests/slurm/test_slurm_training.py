"""distgan under a real two-node Slurm: multi-node training, preemption + requeue, a hard kill.

Five jobs run at once (each node advertises CPUs for all of them): an uninterrupted 2-node run;
a 2-node run warned with SIGUSR1 mid-training (what `--signal=B:USR1@T` does before the time
limit); a 2-node run SIGKILLed without warning and resubmitted, on 2 nodes and (a copy) on 1; and
a one-node run of slurm_single.sbatch whose job step (not its batch shell) gets SIGUSR1. Both
interrupted 2-node runs must end bitwise equal to the uninterrupted one, with every step logged
exactly once; the copy continued on one node finishes with every step logged once.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
MULTINODE = REPO / "launch" / "slurm_multinode.sbatch"
SINGLE = REPO / "launch" / "slurm_single.sbatch"
STEPS = 60
# quickstart, shrunk so a step takes milliseconds; checkpoints only at the end and on a signal.
TRAIN = [
    "configs/quickstart.yaml",
    f"train.steps={STEPS}",
    "model.g_width=8",
    "model.d_width=8",
    "data.batch_size=8",
    "log.every=1",
    "log.sample_every=0",
    "log.num_samples=8",
    "checkpoint.every=0",
    "checkpoint.keep_last=50",
    # steps of milliseconds: the stop flag's all-reduce is throttled to <= 0.5 % of the time, which
    # can space the checks tens of steps apart and let a 60-step run finish before it sees the
    # signal; a 50 ms bound keeps a check every few steps (the math does not depend on it)
    "distributed.stop_check_s=0.05",
]
KILL_CHECKPOINT_EVERY = 4
JOB_TIMEOUT_S = 150


@dataclass
class Job:
    id: int
    out_dir: Path
    log: Path

    def metrics(self) -> list[dict]:
        path = self.out_dir / "metrics.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def meta(self, step: int | None = None) -> dict | None:
        checkpoints = self.out_dir / "checkpoints"
        if step is None:
            if not (checkpoints / "latest").exists():
                return None
            name = (checkpoints / "latest").read_text().strip()
        else:
            name = f"step_{step:07d}"
        return json.loads((checkpoints / name / "meta.json").read_text())

    def latest_step(self) -> int:
        meta = self.meta()
        return 0 if meta is None else meta["step"]

    def checkpoint_steps(self) -> list[int]:
        metas = sorted((self.out_dir / "checkpoints").glob("step_*/meta.json"))
        return [json.loads(m.read_text())["step"] for m in metas]

    def final_generator(self) -> bytes:
        return (self.out_dir / "checkpoints" / f"step_{STEPS:07d}" / "generator.safetensors").read_bytes()


def _submit(cluster, tmp: Path, name: str, script: Path = MULTINODE, extra: tuple[str, ...] = ()) -> Job:
    out_dir, log = tmp / name, tmp / f"{name}.out"
    env = {
        "DISTGAN_CPU": "1",
        "DISTGAN_PYTHON": sys.executable,  # CI: the clone's .venv; locally: /work/venv
        "DISTGAN_SOCKET_IFNAME": "lo",  # both "nodes" are this host: gloo talks over loopback
        "OMP_NUM_THREADS": "1",  # 7 training processes share the cores
        "WANDB_MODE": "disabled",
        "HF_HUB_OFFLINE": "1",
    }
    nodes = 2 if script == MULTINODE else 1
    args = [*TRAIN, f"train.out_dir={out_dir}", *extra]
    return Job(cluster.submit(script, args, nodes=nodes, output=log, cwd=REPO, env=env), out_dir, log)


def _assert_every_step_once(job: Job) -> list[dict]:
    records = job.metrics()
    steps = [r["step"] for r in records]
    assert steps == list(range(1, STEPS + 1)), f"steps logged: {steps}"
    return records


def _resumed_at(job: Job) -> int:
    """checkpoint.every=0: the only checkpoint besides the final one is the preemption one."""
    steps = [s for s in job.checkpoint_steps() if s != STEPS]
    assert len(steps) == 1, job.checkpoint_steps()
    return steps[0]


def _state_line(name: str, f: dict[str, str]) -> str:
    return (
        f"{name}: job {f['JobId']} JobState={f['JobState']} Restarts={f['Restarts']} ExitCode={f['ExitCode']}"
    )


@pytest.fixture(scope="module")
def jobs(slurm_cluster, tmp_path_factory):
    """Submit all runs at once, interrupt three of them, resubmit the killed one on 2 nodes and
    (a copy of it) on 1 node; wait for all."""
    tmp = tmp_path_factory.mktemp("slurm-runs")
    kill_every = (f"checkpoint.every={KILL_CHECKPOINT_EVERY}",)
    reference = _submit(slurm_cluster, tmp, "reference")
    preempted = _submit(slurm_cluster, tmp, "preempted")
    killed = _submit(slurm_cluster, tmp, "killed", extra=kill_every)
    single = _submit(slurm_cluster, tmp, "single", script=SINGLE)

    # Interrupt each run as soon as it is ready, watching all at once: their starts can differ by
    # more than a whole training. Preempt once the loop runs (the trainer's handler is installed);
    # kill hard (every process at once, no warning) once a checkpoint exists.
    signalled_at: dict[str, int] = {}
    killed_pids: list[int] = []
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while len(signalled_at) < 2 or not killed_pids:
        for name, job, how in (("preempted", preempted, ["--batch"]), ("single", single, [])):
            if name not in signalled_at and len(job.metrics()) >= 2:
                slurm_cluster.run(["scancel", "--signal=USR1", *how, str(job.id)])
                signalled_at[name] = len(job.metrics())
        if not killed_pids and killed.latest_step() >= KILL_CHECKPOINT_EVERY:
            killed_pids = slurm_cluster.kill_job_processes(killed.id)
        if time.monotonic() > deadline:
            raise TimeoutError(f"runs did not start training in {JOB_TIMEOUT_S}s:\n{slurm_cluster.logs()}")
        time.sleep(0.05)
    killed_state = {
        "fields": slurm_cluster.wait_job(killed.id, timeout_s=60),
        "metrics": killed.metrics(),
        "latest": killed.latest_step(),
        "pids": killed_pids,
        "log": killed.log.read_text(),
    }
    # A requeued job rarely gets its allocation back: the same run, copied, continues on ONE node.
    shutil.copytree(killed.out_dir, tmp / "shrunk")
    shrunk = _submit(slurm_cluster, tmp, "shrunk", script=SINGLE, extra=kill_every)
    # Resubmit the same command: --resume auto continues from checkpoints/latest.
    resumed = _submit(slurm_cluster, tmp, "killed", extra=kill_every)

    runs = {
        "reference": reference,
        "preempted": preempted,
        "resumed": resumed,
        "single": single,
        "shrunk": shrunk,
    }
    fields = {name: slurm_cluster.wait_job(job.id, timeout_s=JOB_TIMEOUT_S) for name, job in runs.items()}
    # What a person would read in `sacct` (no slurmdbd here): scontrol + the jobcomp/filetxt log.
    print(_state_line("killed", killed_state["fields"]))
    print(f"    SIGKILLed {len(killed_pids)} processes; latest checkpoint: step {killed_state['latest']}")
    for name, job in runs.items():
        print(_state_line(name, fields[name]))
        for record in slurm_cluster.jobcomp_records(job.id):
            print("   ", record)
    print(
        f"signalled after {signalled_at} logged steps; preempted run's checkpoints {preempted.checkpoint_steps()}"
    )
    return {**runs, "fields": fields, "signalled_at": signalled_at, "killed": killed_state}


def test_two_node_job_trains_and_completes(jobs):
    job, fields = jobs["reference"], jobs["fields"]["reference"]
    assert fields["JobState"] == "COMPLETED", job.log.read_text()
    assert fields["ExitCode"] == "0:0"
    assert fields["Restarts"] == "0"  # a finished run is not requeued
    assert fields["NumNodes"] == "2"
    meta = job.meta(STEPS)
    assert meta["step"] == STEPS
    assert meta["world_size"] >= 2
    assert meta["num_machines"] == 2
    _assert_every_step_once(job)
    log = job.log.read_text()
    assert "--machine_rank 0" in log and "--machine_rank 1" in log


def test_preempted_job_checkpoints_requeues_and_matches_uninterrupted_run(jobs, slurm_cluster):
    job, fields = jobs["preempted"], jobs["fields"]["preempted"]
    log = job.log.read_text()
    assert fields["JobState"] == "COMPLETED", log
    assert fields["Restarts"] == "1", log  # requeued exactly once, by the batch script
    assert "requeueing job" in log
    assert len(slurm_cluster.jobcomp_records(job.id)) == 2  # one record per run of the job
    assert jobs["signalled_at"]["preempted"] <= _resumed_at(job) < STEPS
    _assert_every_step_once(job)
    assert job.final_generator() == jobs["reference"].final_generator()


def test_hard_killed_job_resubmitted_resumes_from_last_checkpoint(jobs):
    killed, resumed = jobs["killed"], jobs["resumed"]
    assert len(killed["pids"]) >= 6  # batch shell, srun, and per node: task shell, launcher, worker
    assert killed["fields"]["JobState"] == "FAILED", killed["fields"]
    assert killed["fields"]["Restarts"] == "0"  # no warning, so nobody requeued it
    assert "checkpointing at step" not in killed["log"]  # really no warning: no graceful stop
    latest = killed["latest"]
    assert latest % KILL_CHECKPOINT_EVERY == 0 and 0 < latest < STEPS
    lost = max(r["step"] for r in killed["metrics"]) - latest
    assert 0 <= lost <= KILL_CHECKPOINT_EVERY, (latest, killed["metrics"])

    fields = jobs["fields"]["resumed"]
    assert fields["JobState"] == "COMPLETED", resumed.log.read_text()
    records = _assert_every_step_once(resumed)
    # Resumed, not restarted: the lines up to the checkpoint are the ones written before the kill,
    # and the lost steps after it were trained (and logged) again.
    assert records[:latest] == killed["metrics"][:latest]
    redone = records[latest : len(killed["metrics"])]
    for before, after in zip(killed["metrics"][latest:], redone, strict=True):
        assert after["wall_time"] > before["wall_time"], (before, after)
    assert resumed.final_generator() == jobs["reference"].final_generator()


def test_single_node_job_requeues_when_its_step_is_signalled(jobs):
    job, fields = jobs["single"], jobs["fields"]["single"]
    log = job.log.read_text()
    assert fields["JobState"] == "COMPLETED", log
    assert fields["Restarts"] == "1", log
    # The batch shell was not signalled: the trainer's own exit code 75 made it requeue.
    assert "asking the trainer to checkpoint" not in log
    assert "step exited 75 after a preemption signal" in log
    assert jobs["signalled_at"]["single"] <= _resumed_at(job) < STEPS
    _assert_every_step_once(job)
    meta = job.meta(STEPS)
    assert (meta["world_size"], meta["num_machines"]) == (1, 1)


def test_two_node_run_requeued_on_one_node_resumes_and_finishes(jobs):
    killed, job, fields = jobs["killed"], jobs["shrunk"], jobs["fields"]["shrunk"]
    log = job.log.read_text()
    assert fields["JobState"] == "COMPLETED", log
    assert fields["NumNodes"] == "1"
    latest = killed["latest"]
    assert f"step_{latest:07d} at step {latest}" in log, log  # "resumed from .../step_N at step N"
    written_by = json.loads((job.out_dir / "checkpoints" / f"step_{latest:07d}" / "meta.json").read_text())
    assert written_by["num_machines"] == 2 and written_by["world_size"] >= 2
    assert log.count("but not bitwise like an uninterrupted run") == 1  # one line, by the main process
    _assert_every_step_once(job)
    meta = job.meta(STEPS)
    assert (meta["world_size"], meta["num_machines"], meta["step"]) == (1, 1, STEPS)
