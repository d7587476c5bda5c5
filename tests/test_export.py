"""Export -> Hub folder -> load_generator, through the real command line and huggingface_hub.

The Hub is never reached: loading a repo id reads huggingface_hub's own cache with
HF_HUB_OFFLINE=1, and the upload goes to a local stand-in server (HF_ENDPOINT).
"""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors import safe_open

from distgan.evaluate import default_out
from distgan.export import export
from distgan.export import main as export_main
from distgan.generation import load_generator
from tests.conftest import TINY
from tests.hub_stand_in import HubStandIn
from tests.launching import REPO, cpu_env

SAMPLE_CODE = (
    "import sys, numpy, distgan; g = distgan.load_generator(sys.argv[1]); "
    "numpy.save(sys.argv[2], g.sample(5, seed=7).numpy())"
)


def run(args, env=None, check=True):
    result = subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env or cpu_env(), capture_output=True, text=True, timeout=300
    )
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def ema_run(tmp_path_factory):
    """A 2-step quickstart run with an EMA generator, and a recorded evaluation of its checkpoint."""
    out = tmp_path_factory.mktemp("export") / "run"
    run(
        ["-m", "distgan.train", "--config", "configs/quickstart.yaml", *TINY, "train.steps=2",
         "checkpoint.every=2", "train.ema_decay=0.9", f"train.out_dir={out}"]
    )  # fmt: skip
    checkpoint = out / "checkpoints" / "step_0000002"
    eval_file = default_out(checkpoint)  # where distgan.evaluate writes it
    eval_file.parent.mkdir(parents=True)
    eval_file.write_text(json.dumps({"step": 2, "fd_mnist_classifier": 123.25, "metrics": ["fd"]}))
    return out


def reference_samples(run_dir) -> torch.Tensor:
    return load_generator(run_dir).sample(5, seed=7)  # the checkpoint's EMA generator


def test_export_then_load_in_a_fresh_process_gives_bitwise_equal_samples(ema_run, tmp_path, capsys):
    out = tmp_path / "export"
    assert export_main(["--checkpoint", str(ema_run), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md", "config.yaml", "eval.json", "generator.safetensors", "samples.png",
    ]  # fmt: skip
    with safe_open(str(out / "generator.safetensors"), framework="pt") as f:
        assert f.metadata()["weights"] == "ema"
    run(["-c", SAMPLE_CODE, str(out), str(tmp_path / "x.npy")])
    assert torch.equal(torch.from_numpy(np.load(tmp_path / "x.npy")), reference_samples(ema_run))
    raw = load_generator(ema_run, ema=False).sample(5, seed=7)
    assert not torch.equal(raw, reference_samples(ema_run))  # so the equality above is about EMA weights

    card = (out / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: distgan\n")
    for expected in ("`dcgan`", "2 generator steps", "32 real images seen", "(samples.png)", "fd_mnist_classifier",
                     "123.25", f'distgan.load_generator("{out}")', "1x28x28"):  # fmt: skip
        assert expected in card, expected
    assert (out / "samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "eval.json").read_text())["fd_mnist_classifier"] == 123.25
    config = (out / "config.yaml").read_text()
    assert "ema_decay: 0.9" in config and "arch: dcgan" in config

    assert export_main(["--checkpoint", str(ema_run), "--out", str(ema_run)]) == 2
    assert "not empty and not an earlier export" in capsys.readouterr().err


def test_a_hub_id_loads_from_the_cache_offline_and_an_uncached_one_names_hf_hub_offline(ema_run, tmp_path):
    # huggingface_hub's documented cache layout: models--OWNER--NAME/{refs/main, snapshots/<commit>/...}
    repo = tmp_path / "hf" / "hub" / "models--me--tiny-gan"
    commit = "0123456789abcdef0123456789abcdef01234567"
    export(str(ema_run), repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    env = cpu_env(HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1")

    # One fresh process: load the cached id, then sample an uncached one through the CLI's main.
    code = SAMPLE_CODE + "; from distgan.sample import main; sys.exit(main(sys.argv[3:]))"
    sample_args = ["--checkpoint", "me/not-cached", "--num", "2", "--out", str(tmp_path / "s.npz")]
    result = run(["-c", code, "me/tiny-gan", str(tmp_path / "x.npy"), *sample_args], env=env, check=False)
    assert torch.equal(torch.from_numpy(np.load(tmp_path / "x.npy")), reference_samples(ema_run))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "me/not-cached" in lines[0] and "HF_HUB_OFFLINE" in lines[0], result.stderr


def test_push_to_hub_sends_the_export_files_to_the_hub_endpoint(ema_run, tmp_path, capsys):
    out = tmp_path / "export"
    with HubStandIn() as hub:
        env = cpu_env(HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "hf"), HF_TOKEN="hf_stand_in_token")
        env.pop("HF_HUB_OFFLINE")
        cmd = ["-m", "distgan.export", "--checkpoint", str(ema_run), "--out", str(out)]
        result = run([*cmd, "--push-to-hub", "me/tiny-gan", "--private"], env=env)
    bad = export_main([*cmd[2:-1], str(tmp_path / "other"), "--push-to-hub", "me/a/b"])
    assert "pushed to me/tiny-gan" in result.stdout
    assert [(c["organization"], c["name"], c.get("visibility")) for c in hub.created] == [
        ("me", "tiny-gan", "private")
    ]
    sent = hub.commits["me/tiny-gan"]
    assert sorted(sent) == sorted(p.name for p in out.iterdir())
    for name, data in sent.items():
        assert data == (out / name).read_bytes(), name
    assert 'distgan.load_generator("me/tiny-gan")' in sent["README.md"].decode()
    # A bad repo id is refused before anything is written or sent.
    assert bad == 2 and "'me/a/b' is not a Hub repo id" in capsys.readouterr().err
    assert not (tmp_path / "other").exists() and len(hub.created) == 1
    shutil.rmtree(tmp_path / "hf", ignore_errors=True)
