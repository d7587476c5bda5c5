"""Export -> Hub folder -> load_generator, through the real command line and huggingface_hub.

The Hub is never reached: huggingface_hub talks to a local stand-in server (HF_ENDPOINT) for the
upload and the download, and then, with HF_HUB_OFFLINE=1, reads its own cache.
"""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors import safe_open

from distgan.evaluate import default_out
from distgan.export import main as export_main
from distgan.generation import load_generator
from tests.conftest import TINY
from tests.hub_stand_in import HubStandIn
from tests.launching import REPO, cpu_env

pytestmark = pytest.mark.slow  # trains a 2-step run and starts Python processes

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
    """The checkpoint's EMA generator, on one thread as in the loading processes (OMP_NUM_THREADS=1):
    CPU matmuls may sum in another order on more threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return load_generator(run_dir).sample(5, seed=7)
    finally:
        torch.set_num_threads(threads)


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


def test_push_to_hub_then_load_by_repo_id_online_and_from_the_cache_offline(ema_run, tmp_path, capsys):
    out = tmp_path / "export"
    cache = str(tmp_path / "hf")
    with HubStandIn() as hub:
        online = cpu_env(HF_ENDPOINT=hub.url, HF_HOME=cache, HF_TOKEN="hf_stand_in_token")
        online.pop("HF_HUB_OFFLINE")
        cmd = ["-m", "distgan.export", "--checkpoint", str(ema_run), "--out", str(out)]
        result = run([*cmd, "--push-to-hub", "me/tiny-gan", "--private"], env=online)
        assert "pushed to me/tiny-gan" in result.stdout
        assert [(c["organization"], c["name"], c.get("visibility")) for c in hub.created] == [
            ("me", "tiny-gan", "private")
        ]
        sent = hub.commits["me/tiny-gan"]
        assert sorted(sent) == sorted(p.name for p in out.iterdir())
        for name, data in sent.items():
            assert data == (out / name).read_bytes(), name
        assert 'distgan.load_generator("me/tiny-gan")' in sent["README.md"].decode()

        # Online: huggingface_hub downloads the repo from the endpoint into its cache.
        run(["-c", SAMPLE_CODE, "me/tiny-gan", str(tmp_path / "online.npy")], env=online)
        assert ("GET", "/me/tiny-gan/resolve/" + "a" * 40 + "/generator.safetensors") in hub.requests
    assert torch.equal(torch.from_numpy(np.load(tmp_path / "online.npy")), reference_samples(ema_run))

    # Offline, the Hub gone: the cached repo still loads; one never downloaded is a clear one-line error.
    offline = cpu_env(HF_HOME=cache, HF_HUB_OFFLINE="1")
    code = SAMPLE_CODE + "; from distgan.sample import main; sys.exit(main(sys.argv[3:]))"
    sample_args = ["--checkpoint", "me/not-cached", "--num", "2", "--out", str(tmp_path / "s.npz")]
    result = run(
        ["-c", code, "me/tiny-gan", str(tmp_path / "offline.npy"), *sample_args], env=offline, check=False
    )
    assert torch.equal(torch.from_numpy(np.load(tmp_path / "offline.npy")), reference_samples(ema_run))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "me/not-cached" in lines[0] and "HF_HUB_OFFLINE" in lines[0], result.stderr

    # A bad repo id is refused before anything is written or sent.
    assert export_main([*cmd[2:-1], str(tmp_path / "other"), "--push-to-hub", "me/a/b"]) == 2
    assert "'me/a/b' is not a Hub repo id" in capsys.readouterr().err
    assert not (tmp_path / "other").exists() and len(hub.created) == 1
