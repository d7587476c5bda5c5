"""accelerate launch's whole config reaches distgan: DeepSpeed flags and config files select the
DeepSpeed backend with that stage/JSON, contradictions and unsupported types exit 2.

The mapping environment -> config is tested directly (fast); three real `accelerate launch` runs
on CPU prove the launcher really exports what the mapping reads: the issue's `--use_deepspeed
--zero_stage 2` command (2 processes, meta.json says deepspeed stage 2), an FSDP accelerate config
file and a DEEPSPEED accelerate config file contradicting `distributed.backend: ddp` (exit 2).
"""

from __future__ import annotations

import json
import os
import re
import sys

import pytest

from distgan.config import ConfigError, load_config, override
from distgan.distributed import build_accelerator, complete_from_launcher
from distgan.distributed.launcher import deepspeed_overrides, default_overrides, dynamo_overrides
from tests.launching import TINY_TRAIN, cpu_env, free_port, run

DS = {"ACCELERATE_USE_DEEPSPEED": "true"}


def cfg(*overrides):
    return load_config(None, list(overrides))


def completed(env, *overrides):
    """The config a run launched with `env` trains with (launcher settings, then defaults)."""
    base = cfg(*overrides)
    launched = override(base, deepspeed_overrides(base, env))
    return override(launched, default_overrides(launched)).distributed


# ------------------------------------------------------------------ the mapping, unit by unit


def test_no_launcher_request_resolves_auto_to_ddp_and_stage_2():
    dist = completed({})
    assert (dist.backend, dist.zero_stage, dist.deepspeed_config) == ("ddp", 2, None)
    assert completed({"ACCELERATE_USE_DEEPSPEED": "false"}).backend == "ddp"
    assert completed({}, "distributed.backend=deepspeed").backend == "deepspeed"  # the YAML alone still works


@pytest.mark.parametrize("stage", [1, 2])
def test_use_deepspeed_with_zero_stage_selects_that_stage(stage):
    dist = completed({**DS, "ACCELERATE_DEEPSPEED_ZERO_STAGE": str(stage)})
    assert (dist.backend, dist.zero_stage) == ("deepspeed", stage)
    agreeing = completed(
        {**DS, "ACCELERATE_DEEPSPEED_ZERO_STAGE": str(stage)}, f"distributed.zero_stage={stage}"
    )
    assert (agreeing.backend, agreeing.zero_stage) == ("deepspeed", stage)


def test_deepspeed_config_file_is_adopted_with_its_stage(tmp_path):
    path = tmp_path / "ds.json"
    path.write_text(json.dumps({"zero_optimization": {"stage": 1, "reduce_bucket_size": 1000}}))
    dist = completed({**DS, "ACCELERATE_DEEPSPEED_CONFIG_FILE": str(path)})
    assert (dist.backend, dist.zero_stage, dist.deepspeed_config) == ("deepspeed", 1, str(path))
    same = completed(
        {**DS, "ACCELERATE_DEEPSPEED_CONFIG_FILE": str(path)}, f"distributed.deepspeed_config={path}"
    )
    assert same.deepspeed_config == str(path)


def test_accelerate_config_file_defaults_are_neutral():
    """What `accelerate config` writes for a plain ZeRO-2 setup must not be refused."""
    env = {
        **DS,
        "ACCELERATE_DEEPSPEED_ZERO_STAGE": "2",
        "ACCELERATE_GRADIENT_ACCUMULATION_STEPS": "1",
        "ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE": "none",
        "ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_DEVICE": "none",
        "ACCELERATE_DEEPSPEED_ZERO3_INIT": "false",
        "ACCELERATE_USE_FSDP": "false",
    }
    assert (completed(env).backend, completed(env).zero_stage) == ("deepspeed", 2)


@pytest.mark.parametrize(
    "env, overrides, message",
    [
        (
            DS,
            ["distributed.backend=ddp"],
            "distributed.backend: the config says 'ddp' but accelerate launch asks for DeepSpeed",
        ),
        (
            {**DS, "ACCELERATE_DEEPSPEED_ZERO_STAGE": "2"},
            ["distributed.zero_stage=1"],
            "distributed.zero_stage: the config says 1 but accelerate launch asks for ZeRO stage 2",
        ),
        ({**DS, "ACCELERATE_DEEPSPEED_ZERO_STAGE": "3"}, [], "ZeRO stage 3 .* supports stages 1 and 2"),
        ({**DS, "ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE": "cpu"}, [], "optimizer offload to cpu"),
        ({**DS, "ACCELERATE_DEEPSPEED_ZERO3_INIT": "true"}, [], "zero3_init_flag=true"),
        (
            {**DS, "ACCELERATE_GRADIENT_CLIPPING": "1.0"},
            [],
            "optim.grad_clip: the config says 0 but accelerate launch asks for gradient clipping 1",
        ),
        (
            {"ACCELERATE_USE_FSDP": "true"},
            [],
            r"asks for FSDP .*cannot run \(ACCELERATE_USE_FSDP=true\); distgan supports one process, DDP .* DeepSpeed ZeRO-1/2",
        ),
        ({"ACCELERATE_USE_MEGATRON_LM": "true"}, [], "Megatron-LM .* distgan supports"),
        (
            {"ACCELERATE_GRADIENT_ACCUMULATION_STEPS": "4"},
            [],
            "gradient accumulation over 4 steps .* set train.grad_accum=4 in the distgan config",
        ),
    ],
)
def test_contradictions_and_unsupported_settings_name_both_sides(env, overrides, message):
    with pytest.raises(ConfigError, match=message):
        deepspeed_overrides(cfg(*overrides), env)


def test_other_deepspeed_json_than_the_launchers_is_a_contradiction(tmp_path):
    ours, theirs = tmp_path / "ours.json", tmp_path / "theirs.json"
    for path in (ours, theirs):
        path.write_text("{}")
    env = {**DS, "ACCELERATE_DEEPSPEED_CONFIG_FILE": str(theirs)}
    with pytest.raises(
        ConfigError, match="distributed.deepspeed_config: the config says .*ours.json .*theirs.json"
    ):
        deepspeed_overrides(cfg(f"distributed.deepspeed_config={ours}"), env)


def test_json_stage_outside_1_and_2_is_refused(tmp_path):
    path = tmp_path / "ds.json"
    path.write_text(json.dumps({"zero_optimization": {"stage": 3}}))
    with pytest.raises(ConfigError, match="ds.json sets zero_optimization.stage=3; .* stages 1 and 2"):
        completed({}, "distributed.backend=deepspeed", f"distributed.deepspeed_config={path}")


def test_complete_from_launcher_reads_the_environment(monkeypatch):
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_ZERO_STAGE", "1")
    done = complete_from_launcher(cfg())
    assert (done.distributed.backend, done.distributed.zero_stage) == ("deepspeed", 1)
    assert complete_from_launcher(done) == done  # idempotent: nothing left to adopt


# ------------------------------------------------------------------ real accelerate launches


def launch(*launcher_args: str, out, extra=()):
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", *launcher_args,
        "--main_process_port", str(free_port()), "--dynamo_backend", "no",
        "-m", "distgan.train", *TINY_TRAIN, "train.steps=2", f"train.out_dir={out}", *extra,
    ]  # fmt: skip
    return run(cmd, check=False, env=cpu_env(ACCELERATE_USE_CPU="1"))


@pytest.mark.slow
def test_use_deepspeed_zero_stage_2_trains_with_deepspeed(tmp_path):
    """The issue's command (2 processes): it used to train DDP with exit 0."""
    result = launch(
        "--use_deepspeed", "--zero_stage", "2", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", out=tmp_path / "run",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    checkpoint = tmp_path / "run" / "checkpoints" / "step_0000002"
    meta = json.loads((checkpoint / "meta.json").read_text())
    assert (meta["backend"], meta["zero_stage"], meta["world_size"]) == ("deepspeed", 2, 2)
    assert (checkpoint / "state" / "generator" / "zero_pp_rank_1_mp_rank_00_optim_states.pt").is_file()
    resolved = (tmp_path / "run" / "config.yaml").read_text()
    assert "backend: deepspeed" in resolved and "zero_stage: 2" in resolved


def assert_user_error(result, first_line: str) -> None:
    """The worker printed one line and exited 2 (the launcher above it then fails with exit 1 and
    torchrun's own report, which names the worker's exit code)."""
    assert result.stderr.startswith(first_line), result.stderr[-4000:]
    assert re.search(r"exitcode\s*: 2 ", result.stderr), result.stderr[-4000:]
    assert "/distgan/" not in result.stderr  # no traceback through distgan's code


def accelerate_config(tmp_path, distributed_type: str, **section) -> str:
    lines = [
        "compute_environment: LOCAL_MACHINE",
        f"distributed_type: {distributed_type}",
        "mixed_precision: 'no'",
        "num_machines: 1",
        "num_processes: 1",
        "machine_rank: 0",
        "use_cpu: false",
    ]
    for name, values in section.items():
        lines.append(f"{name}:")
        lines += [f"  {k}: {v}" for k, v in values.items()]
    path = tmp_path / f"{distributed_type.lower()}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.mark.slow
def test_fsdp_accelerate_config_exits_2_saying_what_is_supported(tmp_path):
    config = accelerate_config(
        tmp_path, "FSDP", fsdp_config={"fsdp_version": 1, "fsdp_sharding_strategy": "FULL_SHARD"}
    )
    result = launch("--config_file", config, out=tmp_path / "run")
    assert_user_error(result, "error: accelerate launch asks for FSDP (--use_fsdp or distributed_type: FSDP)")
    assert "distgan supports one process, DDP" in result.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.slow
def test_deepspeed_accelerate_config_against_ddp_in_the_yaml_exits_2(tmp_path):
    config = accelerate_config(
        tmp_path, "DEEPSPEED", deepspeed_config={"zero_stage": 2, "gradient_accumulation_steps": 1}
    )
    result = launch("--config_file", config, out=tmp_path / "run", extra=["distributed.backend=ddp"])
    assert_user_error(
        result, "error: distributed.backend: the config says 'ddp' but accelerate launch asks for DeepSpeed"
    )
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_accelerator_is_built_without_the_launchers_deepspeed_switch(monkeypatch, fresh_accelerate):
    """On a GPU, accelerate would act on ACCELERATE_USE_DEEPSPEED itself (its own plugin and process
    group); distgan's backend needs the plain --multi_gpu world. On CPU `cpu=True` hides the
    difference, so a stand-in Accelerator records the environment it was built in."""
    seen = {}

    class RecordingAccelerator:
        num_processes = 1

        def __init__(self, **kwargs):
            seen["use_deepspeed"] = os.environ.get("ACCELERATE_USE_DEEPSPEED")
            seen["stage"] = os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE")
            seen["dynamo"] = os.environ.get("ACCELERATE_DYNAMO_BACKEND")

    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_ZERO_STAGE", "2")
    monkeypatch.setenv("ACCELERATE_DYNAMO_BACKEND", "INDUCTOR")
    monkeypatch.setattr("accelerate.Accelerator", RecordingAccelerator)
    build_accelerator(complete_from_launcher(cfg()))
    assert seen == {"use_deepspeed": None, "stage": "2", "dynamo": None}
    assert os.environ["ACCELERATE_USE_DEEPSPEED"] == "true"  # given back for anything after


# ------------------------------------------------------------------ torch.compile from the launcher


def test_dynamo_backend_inductor_is_distgans_train_compile():
    inductor = {"ACCELERATE_DYNAMO_BACKEND": "INDUCTOR", "ACCELERATE_DYNAMO_MODE": "default"}
    assert dynamo_overrides(cfg(), inductor) == ["train.compile=true"]
    assert dynamo_overrides(cfg("train.compile=true"), inductor) == []  # already agrees
    assert dynamo_overrides(cfg(), {"ACCELERATE_DYNAMO_BACKEND": "NO"}) == []  # the launcher's default
    assert dynamo_overrides(cfg(), {}) == []


@pytest.mark.parametrize(
    "env, message",
    [
        ({"ACCELERATE_DYNAMO_BACKEND": "AOT_EAGER"}, "'aot_eager' dynamo backend"),
        (
            {"ACCELERATE_DYNAMO_BACKEND": "INDUCTOR", "ACCELERATE_DYNAMO_MODE": "max-autotune"},
            "--dynamo_mode",
        ),
    ],
)
def test_other_dynamo_settings_are_refused_not_dropped(env, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        dynamo_overrides(cfg(), env)


def test_complete_from_launcher_adopts_the_dynamo_backend(monkeypatch):
    monkeypatch.setenv("ACCELERATE_DYNAMO_BACKEND", "INDUCTOR")
    assert complete_from_launcher(cfg()).train.compile is True
