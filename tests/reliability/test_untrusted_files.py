"""Files distgan did not write itself: exports, checkpoints and Hub snapshots as a user meets them
(a cloned folder with a link, a hand-edited manifest, a planted file in the Hub cache), and the last
inputs that ended in a traceback. Every case goes through a command line (`sample`, `export`,
`train`, `prepare`, `bench`) and must end in ONE line `error: ...` with exit 2 that names the file,
flag or variable, never prints what a linked file holds, and leaves the files it was pointed at alone.

All command lines run in one Python process (cli_batch.py: `main(argv)` per case, as `python -m`
runs it), so the file pays the torch import once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from distgan.checkpoint.locate import write_manifest
from tests.reliability.reliability_cli import REPO, env, error_line, train

SECRET = (
    "x" * 100 + " the password is hunter2" * 200
)  # a readable file: past its first characters, never in a message
TINY_RUN = ["train.steps=2", "checkpoint.every=1", "log.num_samples=4"]


@dataclass
class Case:
    name: str
    module: str
    argv: list[str]
    names: tuple[str, ...]  # what the one error line must contain
    env: dict[str, str] = field(default_factory=dict)
    enospc: bool = False
    ok: bool = False  # a control: this one must work (exit 0)
    once: tuple[str, ...] = ()  # (with ok) phrases its stderr must hold exactly once


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A toy run with two checkpoints and an export of the first one."""
    root = tmp_path_factory.mktemp("untrusted")
    run = root / "run"
    result = train(run, *TINY_RUN)
    assert result.returncode == 0, result.stderr
    old = root / "export"
    batch = _run_batch(root, [Case("export", "distgan.export", _export_args(run, 1, old), ())])
    assert batch[0]["code"] == 0, batch[0]["stderr"]
    (root / "secret.txt").write_text(SECRET)
    return root


def _export_args(run: Path, step: int, out: Path) -> list[str]:
    return ["--checkpoint", str(run / "checkpoints" / f"step_{step:07d}"), "--out", str(out)]


def _sample_args(path: Path | str, out: Path) -> list[str]:
    return ["--checkpoint", str(path), "--num", "2", "--out", str(out / "s.npz")]


def _run_batch(root: Path, cases: list[Case], extra_env: dict[str, str] | None = None) -> list[dict]:
    spec = [{"module": c.module, "argv": c.argv, "env": c.env, "enospc": c.enospc} for c in cases]
    (root / "cases.json").write_text(json.dumps(spec))
    command = [sys.executable, str(REPO / "tests/reliability/cli_batch.py"), str(root / "cases.json")]
    result = subprocess.run(
        [*command, str(root / "results.json")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env={**env(), **(extra_env or {})},
    )
    assert result.returncode == 0, result.stderr
    return json.loads((root / "results.json").read_text())


def _copy_checkpoint(world: Path, where: Path, step: int = 2) -> Path:
    target = where / f"step_{step:07d}"
    shutil.copytree(world / "run" / "checkpoints" / target.name, target)
    return target


def _edit_manifest(checkpoint: Path, edit) -> None:
    manifest = json.loads((checkpoint / "manifest.json").read_text())
    edit(manifest["files"])
    (checkpoint / "manifest.json").write_text(json.dumps(manifest))


def _hub_snapshot(world: Path, cache: Path, repo: str, plant: str | None = None) -> Path:
    """The layout huggingface_hub's cache gives a downloaded export: snapshot files link into blobs/.
    `plant`: that file instead links to the secret (a planted link out of the repo's blobs)."""
    folder = cache / "hub" / f"models--{repo.replace('/', '--')}"
    commit = hashlib.sha1(repo.encode()).hexdigest()
    snapshot = folder / "snapshots" / commit
    (folder / "blobs").mkdir(parents=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(commit)
    snapshot.mkdir(parents=True)
    for path in (world / "export").iterdir():
        blob = hashlib.sha256(path.read_bytes()).hexdigest()
        (folder / "blobs" / blob).write_bytes(path.read_bytes())
        target = world / "secret.txt" if path.name == plant else Path("../../blobs") / blob
        os.symlink(target, snapshot / path.name)
    return snapshot


def _cases(world: Path, tmp: Path) -> tuple[list[Case], list]:
    """The attacks and mistakes, each built the way a user meets it; plus checks of what must not change."""
    run, old = world / "run", world / "export"
    cases, after = [], []

    def case_dir(name: str) -> Path:
        path = tmp / name.replace(" ", "_")
        path.mkdir()
        return path

    # -- writing through links, and into folders that are not (only) an export
    d = case_dir("clone with a linked card")
    clone = d / "clone"
    shutil.copytree(old, clone)
    victim = d / "victim.txt"
    victim.write_text("the user's own file\n")
    (clone / "README.md").unlink()
    (clone / "README.md").symlink_to(victim)
    cases.append(Case("export into a clone whose README.md is a link", "distgan.export",
                      _export_args(run, 2, clone), ("README.md", "symbolic link")))  # fmt: skip
    after.append(lambda v=victim: v.read_text() == "the user's own file\n")

    d = case_dir("export with a stranger file")
    shutil.copytree(old, d / "out")
    (d / "out" / "notes.txt").write_text("mine\n")
    cases.append(Case("export into an export holding another file", "distgan.export",
                      _export_args(run, 2, d / "out"), ("notes.txt", "would be lost")))  # fmt: skip
    after.append(lambda d=d: (d / "out" / "notes.txt").read_text() == "mine\n")

    d = case_dir("export locked")
    shutil.copytree(old, d / "out")
    lock = os.open(d / ".out.distgan-export.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another export is writing this folder
    cases.append(Case("second export while one is running", "distgan.export", _export_args(run, 2, d / "out"),
                      ("--out", "in use by another export")))  # fmt: skip
    before = {p.name: p.read_bytes() for p in (d / "out").iterdir()}
    after.append(lambda d=d, b=before: {p.name: p.read_bytes() for p in (d / "out").iterdir()} == b)

    d = case_dir("export full disk")
    shutil.copytree(old, d / "out")
    cases.append(Case("export under a full disk", "distgan.export", _export_args(run, 2, d / "out"),
                      ("--out", "No space left on device", "earlier export is unchanged"), enospc=True))  # fmt: skip
    before = {p.name: p.read_bytes() for p in (d / "out").iterdir()}
    after.append(lambda d=d, b=before: {p.name: p.read_bytes() for p in (d / "out").iterdir()} == b)
    after.append(lambda d=d: sorted(p.name for p in d.iterdir()) == [".out.distgan-export.lock", "out"])

    # -- manifests: confined and complete
    d = case_dir("manifest dotdot")
    ckpt = _copy_checkpoint(world, d)
    _edit_manifest(ckpt, lambda f: f.update({"../../secret.txt": {"size": 1, "sha256": "0" * 64}}))
    cases.append(Case("manifest names ../ a file outside", "distgan.sample", _sample_args(ckpt, d),
                      ("manifest.json", "../../secret.txt", "not a file name inside")))  # fmt: skip
    d = case_dir("manifest absolute")
    ckpt = _copy_checkpoint(world, d)
    _edit_manifest(ckpt, lambda f: f.update({str(world / "secret.txt"): {"size": 1, "sha256": "0" * 64}}))
    cases.append(Case("manifest names an absolute path", "distgan.sample", _sample_args(ckpt, d),
                      ("manifest.json", "not a file name inside")))  # fmt: skip
    d = case_dir("manifest reduced")
    ckpt = _copy_checkpoint(world, d)
    shutil.copy(
        run / "checkpoints" / "step_0000001" / "generator.safetensors", ckpt / "generator.safetensors"
    )
    _edit_manifest(ckpt, lambda f: [f.pop(k) for k in list(f) if k != "meta.json"])
    cases.append(Case("manifest reduced to meta.json vouches for swapped weights", "distgan.sample",
                      _sample_args(ckpt, d), ("is not listed in manifest.json",)))  # fmt: skip
    d = case_dir("checkpoint with a link")
    ckpt = _copy_checkpoint(world, d)
    (ckpt / "generator.safetensors").unlink()
    (ckpt / "generator.safetensors").symlink_to(
        run / "checkpoints" / "step_0000001" / "generator.safetensors"
    )
    write_manifest(ckpt)  # the manifest follows the link: it matches
    cases.append(Case("checkpoint weights linked elsewhere, manifest rewritten", "distgan.sample",
                      _sample_args(ckpt, d), ("generator.safetensors", "symbolic link")))  # fmt: skip

    # -- an export's config.yaml and weights as untrusted input
    def broken_export(name: str, file: str, content: bytes | None = None, link: Path | None = None) -> Path:
        d = case_dir(name)
        shutil.copytree(old, d / "export")
        (d / "export" / file).unlink()
        if link is not None:
            (d / "export" / file).symlink_to(link)
        else:
            (d / "export" / file).write_bytes(content)
        return d

    d = broken_export("config linked to a secret", "config.yaml", link=world / "secret.txt")
    cases.append(Case("export config.yaml links to another file", "distgan.sample",
                      _sample_args(d / "export", d), ("config.yaml", "symbolic link")))  # fmt: skip
    d = broken_export("config is a secret", "config.yaml", SECRET.encode())
    cases.append(Case("export config.yaml holds another file's text", "distgan.sample",
                      _sample_args(d / "export", d), ("config.yaml", "must be a mapping", "str of length")))  # fmt: skip
    d = broken_export("config 5 MB scalar", "config.yaml", b"model: " + b"x" * 5_000_000 + b"\n")
    cases.append(Case("export config.yaml with a 5 MB scalar", "distgan.sample", _sample_args(d / "export", d),
                      ("config.yaml", "model", "length 5000000")))  # fmt: skip
    marker = tmp / "tag_ran"
    d = broken_export(
        "config tag", "config.yaml", f"model: !!python/object/apply:os.system ['touch {marker}']\n".encode()
    )
    cases.append(Case("export config.yaml with a python tag", "distgan.sample", _sample_args(d / "export", d),
                      ("config.yaml", "not valid YAML", "python/object/apply")))  # fmt: skip
    after.append(lambda: not marker.exists())
    d = broken_export("config parse error", "config.yaml", b"model: [unclosed\n")
    cases.append(Case("export config.yaml that is not YAML", "distgan.sample", _sample_args(d / "export", d),
                      ("config.yaml", "not valid YAML", "line 2")))  # fmt: skip
    config = (old / "config.yaml").read_text().replace("model:\n", "model:\n  widht: 3\n", 1)
    d = broken_export("config unknown key", "config.yaml", config.encode())
    cases.append(Case("export config.yaml with an unknown key", "distgan.sample", _sample_args(d / "export", d),
                      ("config.yaml", "unknown key model.widht")))  # fmt: skip
    d = broken_export("weights garbage", "generator.safetensors", b"\x00" * 64)
    cases.append(Case("export weights not safetensors", "distgan.sample", _sample_args(d / "export", d),
                      ("generator.safetensors", "not a readable safetensors file")))  # fmt: skip
    tensors = load_file(old / "generator.safetensors")
    name = sorted(tensors)[0]
    tensors[name] = torch.cat([tensors[name], tensors[name]])
    d = broken_export("weights wrong shape", "generator.safetensors", b"")
    save_file(tensors, d / "export" / "generator.safetensors")
    cases.append(Case("export weights of another shape", "distgan.sample", _sample_args(d / "export", d),
                      (f"tensor {name} has shape", "expects")))  # fmt: skip

    # -- the Hub cache: a planted link out of the snapshot's blobs (the unplanted one loads: see below)
    cache = tmp / "hf"
    _hub_snapshot(world, cache, "me/planted", plant="config.yaml")
    _hub_snapshot(world, cache, "me/intact")
    d = case_dir("hub planted")
    cases.append(Case("hub snapshot with a planted link", "distgan.sample", _sample_args("me/planted", d),
                      ("config.yaml", "outside the snapshot's own blobs")))  # fmt: skip
    d = case_dir("hub intact")  # the rule spares what huggingface_hub writes: files linked into blobs/
    cases.append(Case("hub snapshot as huggingface_hub writes it", "distgan.sample",
                      _sample_args("me/intact", d), (), ok=True))  # fmt: skip
    after.append(lambda d=d: (d / "s.npz").is_file())

    # -- the rest of the list: one line each
    toy = [
        "--config",
        str(REPO / "configs/toy_ring.yaml"),
        "train.steps=1",
        "model.g_width=8",
        "model.d_width=8",
    ]
    cases += [
        Case("WORLD_SIZE not a number", "distgan.train", [*toy, f"train.out_dir={tmp}/ws"], ("WORLD_SIZE", "'abc'"),
             env={"WORLD_SIZE": "abc"}),
        Case("LOCAL_WORLD_SIZE zero", "distgan.train", [*toy, f"train.out_dir={tmp}/lws"], ("LOCAL_WORLD_SIZE", "'0'"),
             env={"LOCAL_WORLD_SIZE": "0"}),
        Case("accumulation steps not a number", "distgan.train", [*toy, f"train.out_dir={tmp}/ga"],
             ("ACCELERATE_GRADIENT_ACCUMULATION_STEPS", "'abc'"), env={"ACCELERATE_GRADIENT_ACCUMULATION_STEPS": "abc"}),
        Case("toy num_classes below its modes", "distgan.train", [*toy, "model.num_classes=3", f"train.out_dir={tmp}/nc"],
             ("model.num_classes=3", ">= 8")),
        Case("sample seed negative", "distgan.sample", ["--seed", "-1", *_sample_args(old, tmp)], ("--seed", "-1")),
        Case("sample seed 2**32", "distgan.sample", ["--seed", str(2**32), *_sample_args(old, tmp)], ("--seed", str(2**32))),
        Case("bench negative steps", "distgan.bench.cli", [*toy[:2], "--steps", "-3"], ("--steps", "-3")),
        Case("DISTGAN_CACHE under a file", "distgan.train", [*toy, "eval.every=1", "eval.num=100", f"train.out_dir={tmp}/dc"],
             ("DISTGAN_CACHE", "cannot create the reference cache directory"),
             env={"DISTGAN_CACHE": str(tmp / "cache_is_a_file" / "below")}),
    ]  # fmt: skip
    (tmp / "cache_is_a_file").write_text("a file, not a directory\n")
    lock_dir = tmp / "lockdir"
    (lock_dir / ".distgan.lock").mkdir(parents=True)
    cases.append(Case("lock path is a directory", "distgan.train", [*toy, f"train.out_dir={lock_dir}"],
                      (".distgan.lock", "lock file")))  # fmt: skip
    images = ["--config", str(REPO / "configs/quickstart.yaml"), "data.num_workers=0"]
    (tmp / "a_file").write_text("not a directory\n")
    run_like = tmp / "a_run"
    (run_like / "checkpoints").mkdir(parents=True)
    cases += [
        Case("prepare --out an existing file", "distgan.data.prepare",
             [*images, "--out", str(tmp / "a_file"), "--num-shards", "1"], ("--out", "a_file", "not a directory")),
        Case("prepare --limit negative", "distgan.data.prepare",
             [*images, "--out", str(tmp / "p1"), "--num-shards", "1", "--limit", "-5"], ("--limit", "-5")),
        Case("prepare more shards than --limit rows", "distgan.data.prepare",
             [*images, "--out", str(tmp / "p2"), "--num-shards", "8", "--limit", "3"], ("--num-shards 8", "3 rows")),
        Case("prepare --out a run directory", "distgan.data.prepare",
             [*images, "--out", str(run_like), "--num-shards", "1"], ("--out", "training run's directory")),
    ]  # fmt: skip
    after.append(lambda: sorted(p.name for p in run_like.iterdir()) == ["checkpoints"])

    # -- image modes: 16-bit scaled (not clipped to white), every conversion said once per mode
    folder = tmp / "modes"
    folder.mkdir()
    grey16 = Image.fromarray(np.full((8, 8), 100 * 257, dtype=np.uint16))  # 16-bit value of 8-bit 100
    for i in range(2):  # two images of each mode: still one line per mode
        grey16.save(folder / f"grey16_{i}.png")
        Image.new("RGBA", (8, 8), (10, 20, 30, 0)).save(folder / f"rgba_{i}.png")
        Image.new("CMYK", (8, 8), (0, 50, 50, 0)).save(folder / f"cmyk_{i}.jpg")
        Image.new("P", (8, 8), 3).save(folder / f"palette_{i}.png")
        Image.new("1", (8, 8), 0).save(folder / f"bits_{i}.png")
        Image.new("L", (8, 8), 60).save(folder / f"grey_{i}.png")
    prepared = tmp / "modes_prepared"
    cases.append(Case("image modes in an RGB image folder", "distgan.data.prepare",
                      [*images[:2], "--out", str(prepared), "--num-shards", "1", images[2], "data.source=imagefolder",
                       f"data.path={folder}", "model.channels=3", "data.resolution=28", "data.label_column=null", "model.num_classes=0"],
                      (), ok=True, once=tuple(f"{m} images -> RGB" for m in ("I;16", "RGBA", "CMYK", "P", "1", "L"))))  # fmt: skip
    after.append(lambda: _prepared_pixels(prepared).count((100, 100, 100)) == 2)
    few = tmp / "few_rows"
    cases.append(Case("prepare more shards than the source has rows", "distgan.data.prepare",
                      [*images[:2], "--out", str(few), "--num-shards", "20", images[2], "data.source=imagefolder",
                       f"data.path={folder}", "model.channels=3", "data.resolution=28", "data.label_column=null",
                       "model.num_classes=0"], ("--num-shards 20", "only 12 usable images")))  # fmt: skip
    after.append(lambda: not list(few.glob("*.parquet")))  # no empty (or any) shards left behind
    return cases, after


def _prepared_pixels(prepared: Path) -> list[tuple[int, ...]]:
    """The first pixel of every image `prepare` wrote (each test image is one colour)."""
    table = pq.read_table(next(prepared.glob("shard-*.parquet")))
    return [tuple(np.frombuffer(image, dtype=np.uint8)[:3]) for image in table.column("image").to_pylist()]


def test_untrusted_files_and_last_tracebacks_end_in_one_bounded_line(world, tmp_path):
    cases, after = _cases(world, tmp_path)
    results = _run_batch(tmp_path, cases, {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"})
    failures = []
    for case, result in zip(cases, results, strict=True):
        completed = subprocess.CompletedProcess([], result["code"], result["stdout"], result["stderr"])
        if case.ok:
            if result["code"] != 0:
                failures.append(f"{case.name}: exit {result['code']}: {result['stderr'][-500:]}")
            counts = {phrase: result["stderr"].count(phrase) for phrase in case.once}
            if any(n != 1 for n in counts.values()):
                failures.append(f"{case.name}: not once each: {counts}: {result['stderr'][-1500:]}")
            continue
        try:
            line = error_line(completed)
            missing = [name for name in case.names if name not in line]
            assert not missing, f"{missing} not in {line!r}"
            assert "hunter2" not in line and len(line) < 600, line[:300]
        except AssertionError as err:
            failures.append(f"{case.name}: {err}")
    assert not failures, "\n".join(failures)
    assert all(check() for check in after), [i for i, check in enumerate(after) if not check()]


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.slow  # about 8 forked exports per variant
@pytest.mark.parametrize("exchange", [True, False], ids=["exchange", "two-renames"])
def test_reexport_killed_at_every_write_leaves_the_old_or_the_new_export(world, tmp_path, exchange):
    """SIGKILL just before each write of a re-export (export_kill.py, outside the package): the folder
    is then byte for byte the earlier export or the new one; with the two-rename fallback it may also
    be missing for a moment, which a load refuses in one line."""
    out, states = tmp_path / "export", tmp_path / "states"
    states.mkdir()
    checkpoint = world / "run" / "checkpoints" / "step_0000002"
    command = [sys.executable, str(REPO / "tests/reliability/export_kill.py"), str(checkpoint), str(out)]
    command += [str(world / "export"), str(states), *([] if exchange else ["--no-exchange"])]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO, env=env())
    assert result.returncode == 0, result.stderr
    runs = json.loads((states / "summary.json").read_text())
    assert [r["killed"] for r in runs] == [True] * (len(runs) - 1) + [False] and runs[-1]["code"] == 0
    assert len(runs) >= 7, runs  # weights, config, samples, card, swap, clean-up: each killed once
    old, new = _files(world / "export"), _files(out)
    assert old != new and sorted(new) == sorted(old)
    missing = []
    for run in runs[:-1]:
        state = states / str(run["n"])
        if not state.exists():
            missing.append(run["n"])
            continue
        assert _files(state) in (old, new), f"killed before write {run['n']}: a mixture of two exports"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".export.distgan-export.lock", "export", "states"]
    if exchange:
        assert not missing
        return
    assert missing, runs  # a kill between the two renames (leftover clean-ups shift which run it is)
    gone = subprocess.run(
        [sys.executable, "-m", "distgan.sample", *_sample_args(tmp_path / "gone", tmp_path)],
        capture_output=True, text=True, timeout=120, cwd=REPO, env=env(),
    )  # fmt: skip
    assert "gone" in error_line(gone)
