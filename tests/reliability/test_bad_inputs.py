"""Every bad input ends as ONE line `error: ...` and exit 2 through the real CLI, before any compute.

Each error row runs what `python -m distgan.train --config ... KEY=VALUE` runs: `main(ARGV)`, many
rows in one interpreter (tests/reliability/cli_batch.py: the torch import is paid once per batch,
not per row), and asserts the exit code, that stderr is one line starting with "error: " that names
the key or file, no traceback, and for the train.out_dir rows that nothing on disk was created or
changed. Each warning row is its own `python -m distgan.train` process: Python prints a warning
once per process, and the test asserts exactly that.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from distgan.data.sources import EMBEDDED_PATH

REPO = Path(__file__).resolve().parents[2]
# Tiny runs: one G step, no samples or checkpoints; an accepted input would finish in seconds.
TINY = ["train.steps=1", "log.every=1", "log.sample_every=0", "checkpoint.every=0", "log.num_samples=16"]
TOY = ["--config", "configs/toy_ring.yaml", *TINY, "data.batch_size=16", "model.g_width=8", "model.d_width=8"]
IMAGES = ["--config", "configs/quickstart.yaml", *TINY, "data.batch_size=16", "model.g_width=8",
          "model.d_width=8", "train.ema_decay=0"]  # fmt: skip


@dataclass(frozen=True)
class Case:
    name: str
    args: tuple[str, ...]  # {files} in an argument is replaced by the fixture directory
    names: tuple[str, ...]  # what the one error line must contain (key, file, value)


CASES = [
    Case("config not utf-8", ("--config", "{files}/latin1.yaml"), ("latin1.yaml", "UTF-8", "byte 5")),
    Case("duplicate section", ("--config", "{files}/dup_section.yaml"), ("duplicate key train", "lines 1 and 3")),
    Case("duplicate nested key", ("--config", "{files}/dup_key.yaml"), ("duplicate key optim.d.lr", "lines 3 and 4")),
    Case("seed negative", (*TOY, "train.seed=-1"), ("train.seed", "-1")),
    Case("seed 2**32", (*TOY, "train.seed=4294967296"), ("train.seed", "4294967296")),
    Case("n_critic huge", (*TOY, "train.n_critic=5000"), ("train.n_critic", "1000")),
    Case("boost n_critic huge", (*TOY, "train.critic_boost_n_critic=5000", "train.critic_boost_steps=1"), ("train.critic_boost_n_critic", "1000")),
    Case("lr inf", (*TOY, "optim.d.lr=inf"), ("optim.d.lr", "finite")),
    Case("lr nan", (*TOY, "optim.g.lr=.nan"), ("optim.g.lr", "finite")),
    Case("lr above 1", (*TOY, "optim.g.lr=3"), ("optim.g.lr", "(0, 1]")),
    Case("beta1 is 1", (*TOY, "optim.d.beta1=1"), ("optim.d.beta1", "[0, 1)")),
    Case("weight_decay inf", (*TOY, "optim.d.weight_decay=inf"), ("optim.d.weight_decay", "finite")),
    Case("weight_decay negative", (*TOY, "optim.g.weight_decay=-0.1"), ("optim.g.weight_decay", ">= 0")),
    Case("gp_weight 1e300", (*TOY, "objective.gp_weight=1e300"), ("objective.gp_weight", "10000")),
    Case("r1_weight huge", (*TOY, "objective.r1_weight=1e5"), ("objective.r1_weight", "10000")),
    Case("grad_clip inf", (*TOY, "optim.grad_clip=inf"), ("optim.grad_clip", "finite")),
    Case("ema_decay 1", (*TOY, "train.ema_decay=1"), ("train.ema_decay", "[0, 1)")),
    Case("real_label 0.5", (*TOY, "objective.real_label=0.5"), ("objective.real_label", "(0.5, 1]")),
    Case("d_dropout nan", (*TOY, "model.d_dropout=nan"), ("model.d_dropout", "finite")),
    Case("g_width absurd", (*TOY, "model.g_width=100000"), ("model.g_width=100000", "GiB")),
    Case("batch absurd", (*TOY, "data.batch_size=1000000000"), ("data.batch_size=1000000000", "GiB")),
    Case("out_dir is a file", (*TOY, "train.out_dir={files}/a_file"), ("train.out_dir", "a_file", "is an existing file")),
    Case("out_dir under a file", (*TOY, "train.out_dir={files}/a_file/run"), ("train.out_dir", "a_file")),
    Case("out_dir not writable", (*TOY, "train.out_dir={readonly}/run"), ("train.out_dir", "cannot write")),
    Case("parquet empty", (*IMAGES, "data.source=parquet", "data.path={files}/empty.parquet"),
         ("empty.parquet", "not a valid parquet file")),
    Case("parquet bit-flipped", (*IMAGES, "data.source=parquet", "data.path={files}/flipped.parquet",
                                 "data.shuffle_buffer=0"), ("flipped.parquet", "not a valid parquet file")),
]  # fmt: skip
OUT_DIR_CASES = {"out_dir is a file", "out_dir under a file", "out_dir not writable"}


@dataclass(frozen=True)
class Warned:
    name: str
    args: tuple[str, ...]
    phrase: str  # appears exactly once in stderr


WARNINGS = [
    # The embedded MNIST digits are 28 px: 64 px is a 2.3x upscale.
    Warned("upscaled more than 2x", (*IMAGES, "data.resolution=64"), "upscaled 2.3x"),
    Warned("dataset smaller than a batch", (*IMAGES, "data.source=parquet", "data.path={files}/ten.parquet",
                                            "data.label_column=label"), "larger than the whole dataset (10"),
]  # fmt: skip


def _write_fixtures(files: Path) -> None:
    (files / "latin1.yaml").write_bytes("# Caf\xe9 run\ntrain:\n  steps: 1\n".encode("latin-1"))
    (files / "dup_section.yaml").write_text("train:\n  steps: 1\ntrain:\n  steps: 2\n")
    (files / "dup_key.yaml").write_text("optim:\n  d:\n    lr: 1.0e-4\n    lr: 2.0e-4\ntrain:\n  steps: 1\n")
    (files / "a_file").write_text("not a directory\n")
    (files / "empty.parquet").write_bytes(b"")
    table = pq.read_table(EMBEDDED_PATH).slice(0, 200)
    pq.write_table(table.slice(0, 10), files / "ten.parquet")
    pq.write_table(table, files / "good.parquet", row_group_size=1000)
    data = bytearray((files / "good.parquet").read_bytes())
    start = len(data) // 3  # inside the image column's compressed pages; the footer stays intact
    data[start : start + 64] = bytes(b ^ 0xFF for b in data[start : start + 64])
    (files / "flipped.parquet").write_bytes(data)
    # The fixture must really be broken in the middle: the footer reads, the data does not.
    assert pq.ParquetFile(files / "flipped.parquet").metadata.num_rows == 200
    with pytest.raises(OSError):
        pq.read_table(files / "flipped.parquet")


def _readonly_dir(tmp: Path) -> Path:
    """A directory this process cannot write in: mode 0555, or for root (who may write anyway) /proc."""
    if os.geteuid() == 0:
        return Path("/proc")
    path = tmp / "readonly"
    path.mkdir()
    path.chmod(0o555)
    return path


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def _argv(name: str, args: tuple[str, ...], subs: dict[str, str], runs: Path) -> list[str]:
    argv = [a.format(**subs) for a in args]
    if not any(a.startswith("train.out_dir=") for a in argv):  # rows run at once: one directory each
        argv.append(f"train.out_dir={runs / name.replace(' ', '_')}")
    return argv


def _env() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", WANDB_MODE="disabled", HF_HUB_OFFLINE="1",
                PYTHONPATH=str(REPO))  # fmt: skip


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    """One `python -m distgan.train ARGV` process."""
    command = [sys.executable, "-m", "distgan.train", *argv]
    try:
        return subprocess.run(command, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired as err:  # an accepted bad input may train on: fail this row only
        return subprocess.CompletedProcess(command, -9, err.stdout or "", f"timed out\n{err.stderr or ''}")


def _run_batch(argvs: list[list[str]], where: Path) -> list[subprocess.CompletedProcess]:
    """Many `python -m distgan.train ARGV` rows in one interpreter (cli_batch.py)."""
    where.mkdir(parents=True)
    (where / "cases.json").write_text(json.dumps([{"module": "distgan.train", "argv": a} for a in argvs]))
    command = [sys.executable, str(REPO / "tests/reliability/cli_batch.py"), str(where / "cases.json")]
    batch = subprocess.run(
        [*command, str(where / "results.json")],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert batch.returncode == 0, batch.stderr[-3000:]
    results = json.loads((where / "results.json").read_text())
    return [
        subprocess.CompletedProcess(a, r["code"], r["stdout"], r["stderr"])
        for a, r in zip(argvs, results, strict=True)
    ]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Run every row once, a few at a time; returns ({name: CompletedProcess}, snapshots, files dir)."""
    tmp = tmp_path_factory.mktemp("bad_inputs")
    files = tmp / "files"
    files.mkdir()
    _write_fixtures(files)
    readonly = _readonly_dir(tmp)
    subs = {"files": str(files), "readonly": str(readonly)}
    before = _snapshot(tmp)
    errors = [_argv(c.name, c.args, subs, tmp / "runs") for c in CASES]
    halves = [errors[: len(errors) // 2], errors[len(errors) // 2 :]]
    with ThreadPoolExecutor(max_workers=2) as pool:
        batches = [pool.submit(_run_batch, half, tmp / f"batch_{i}") for i, half in enumerate(halves)]
        warned = [pool.submit(_run, _argv(w.name, w.args, subs, tmp / "runs")) for w in WARNINGS]
        runs = [*batches[0].result(), *batches[1].result(), *(w.result() for w in warned)]
    done = dict(zip([c.name for c in CASES] + [w.name for w in WARNINGS], runs, strict=True))
    return done, before, _snapshot(tmp), tmp


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_one_clear_line_and_exit_2(results, case):
    done, _, _, _ = results
    proc = done[case.name]
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2, f"exit {proc.returncode}; stderr:\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1, f"expected one line, got:\n{proc.stderr}"
    assert lines[0].startswith("error: ")
    for name in case.names:
        assert name in lines[0], f"{name!r} not in {lines[0]!r}"


@pytest.mark.parametrize("case", [c for c in CASES if c.name in OUT_DIR_CASES], ids=sorted(OUT_DIR_CASES))
def test_rejected_out_dir_changes_nothing_on_disk(results, case):
    done, before, after, tmp = results
    assert done[case.name].returncode == 2
    assert {k: v for k, v in after.items() if "/files" in k} == {
        k: v for k, v in before.items() if "/files" in k
    }
    assert (tmp / "files" / "a_file").read_text() == "not a directory\n"
    if os.geteuid() != 0:
        assert list((tmp / "readonly").iterdir()) == []


@pytest.mark.parametrize("warned", WARNINGS, ids=[w.name for w in WARNINGS])
def test_warning_is_printed_once_and_the_run_finishes(results, warned):
    done, _, _, _ = results
    proc = done[warned.name]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count(warned.phrase) == 1, proc.stderr
