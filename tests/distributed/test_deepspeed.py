"""DeepSpeed backend: its config (distgan's values + a user JSON) and exact resume from DeepSpeed's
own checkpoint format with the contract's safetensors weights exported alongside.

Gradient equivalence of ZeRO-1/2 with one process is in test_equivalence.py.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from distgan.config import ConfigError, load_config
from distgan.distributed.deepspeed_json import deepspeed_config
from tests.launching import REPO, TINY_TRAIN, accelerate_launch, run


def ds_cfg(*extra):
    return load_config(
        None, ["distributed.backend=deepspeed", "data.batch_size=64", "optim.grad_clip=1.0", *extra]
    )


@pytest.mark.parametrize("stage", [1, 2])
def test_shipped_json_merges_over_distgan_values(stage):
    path = REPO / "configs" / f"deepspeed_zero{stage}.json"
    config = deepspeed_config(
        ds_cfg(f"distributed.zero_stage={stage}", f"distributed.deepspeed_config={path}"), 4
    )
    assert config["train_batch_size"] == 64 and config["train_micro_batch_size_per_gpu"] == 16
    assert config["gradient_accumulation_steps"] == 1 and config["gradient_clipping"] == 1.0
    assert config["zero_optimization"]["stage"] == stage
    assert config["zero_optimization"]["reduce_bucket_size"] == 500_000_000  # the file's tuning is kept
    assert config["bf16"]["enabled"] is False and config["fp16"]["enabled"] is False
    assert config["fp16"]["loss_scale_window"] == 1000
    assert "auto" not in json.dumps(config)


def test_fp16_enables_deepspeed_loss_scaling_and_bf16_stays_autocast():
    assert deepspeed_config(ds_cfg("train.mixed_precision=fp16"), 2)["fp16"]["enabled"] is True
    bf16 = deepspeed_config(ds_cfg("train.mixed_precision=bf16"), 2)
    assert bf16["bf16"]["enabled"] is False and bf16["fp16"]["enabled"] is False


@pytest.mark.parametrize(
    "user, key",
    [
        ({"train_batch_size": 32}, "train_batch_size=32"),
        ({"train_micro_batch_size_per_gpu": 8}, "train_micro_batch_size_per_gpu=8"),
        ({"gradient_clipping": 0.5}, "gradient_clipping=0.5"),
        ({"bf16": {"enabled": True}}, "bf16.enabled=True"),
    ],
)
def test_json_contradicting_distgan_is_an_error(tmp_path, user, key):
    path = tmp_path / "ds.json"
    path.write_text(json.dumps(user))
    with pytest.raises(ConfigError, match=f"distributed.deepspeed_config: .*ds.json sets {key}"):
        deepspeed_config(ds_cfg(f"distributed.deepspeed_config={path}"), 4)


def test_unreadable_json_names_the_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="broken.json as JSON"):
        deepspeed_config(ds_cfg(f"distributed.deepspeed_config={path}"), 4)


@pytest.mark.slow
def test_zero2_bf16_resume_from_deepspeed_checkpoint_is_exact(tmp_path):
    """4 steps straight == 2 steps, resume from DeepSpeed's checkpoint, 2 more (2 processes)."""
    common = [
        *TINY_TRAIN,
        "objective.loss=wgan-gp",
        "model.d_norm=layer",
        "train.n_critic=2",
        "distributed.backend=deepspeed",
        "distributed.zero_stage=2",
        "train.mixed_precision=bf16",
        "checkpoint.every=2",
        "train.steps=4",
    ]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    run(accelerate_launch(2, "-m", "distgan.train", *common, f"train.out_dir={straight}"))
    middle = straight / "checkpoints" / "step_0000002"
    state = middle / "state"
    for engine in ("generator", "discriminator"):  # DeepSpeed's own format, one partition per rank
        assert (state / engine / "mp_rank_00_model_states.pt").is_file()
        assert sorted(p.name for p in (state / engine).glob("zero_pp_rank_*")) == [
            "zero_pp_rank_0_mp_rank_00_optim_states.pt",
            "zero_pp_rank_1_mp_rank_00_optim_states.pt",
        ]
    for rank in (0, 1):  # distgan's own per-rank RNG state: JSON + safetensors, nothing to unpickle
        assert (state / f"rng_state_{rank}.json").is_file()
        assert (state / f"rng_state_{rank}.safetensors").is_file()
    run(
        accelerate_launch(
            2, "-m", "distgan.train", *common, f"train.out_dir={resumed}", "--resume", str(middle)
        )
    )

    final = {}
    for name in ("generator", "generator_ema", "discriminator"):
        a = final[name] = load_file(str(straight / "checkpoints" / "step_0000004" / f"{name}.safetensors"))
        b = load_file(str(resumed / "checkpoints" / "step_0000004" / f"{name}.safetensors"))
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), name
        assert all(v.dtype in (torch.float32, torch.int64) for v in a.values())  # fp32 export under bf16
    halfway = load_file(str(middle / "generator.safetensors"))
    assert not torch.equal(halfway["project.weight"], final["generator"]["project.weight"])  # it trained
    metrics = [json.loads(line) for line in (resumed / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [3, 4]
    assert all(torch.isfinite(torch.tensor([m["gp"], m["loss_d"], m["loss_g"]])).all() for m in metrics)
