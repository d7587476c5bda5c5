"""Transfer learning: train.init_from seeds a fresh run from a run, a checkpoint, an export or a Hub
id; train.freeze_d keeps D's first blocks fixed (FreezeD).

One tiny source run (2 steps, EMA) and its export serve every test; the Hub is the local stand-in.
"""

import copy
import json

import pytest
import torch
from safetensors.torch import load_file

from distgan.config import load_config
from distgan.export import main as export_main
from distgan.generation import load_generator
from distgan.model_card import render
from distgan.models import build_discriminator, build_generator
from distgan.registry import ARCHITECTURES
from distgan.train import main as train_main
from distgan.trainer import TrainHooks
from distgan.transfer import Seed, TransferError, freeze_discriminator_blocks, open_source, resumed_record
from tests.conftest import TINY
from tests.hub_stand_in import COMMIT, HubStandIn

pytestmark = pytest.mark.usefixtures("one_thread")

# 32 px: the DCGAN D has three blocks, so freeze_d=2 leaves one block that trains.
RECIPE = ["--config", "configs/quickstart.yaml", *TINY, "data.resolution=32", "optim.lr_decay_start=1.0"]


def overrides(out_dir, *extra):
    return [*RECIPE, f"train.out_dir={out_dir}", "train.ema_decay=0.9", *extra]


def reset_accelerate():
    from accelerate.state import AcceleratorState, GradientState, PartialState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    PartialState._reset_state()


def run(out_dir, *extra, hooks=None) -> int:
    reset_accelerate()
    try:
        return train_main(overrides(out_dir, *extra), hooks=hooks)
    finally:
        reset_accelerate()


def config(out_dir, *extra):
    return load_config(RECIPE[1], [*RECIPE[2:], f"train.out_dir={out_dir}", "train.ema_decay=0.9", *extra])


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """(run directory, export folder) of a 2-step run with an EMA generator."""
    root = tmp_path_factory.mktemp("transfer")
    assert run(root / "source", "train.steps=2", "checkpoint.every=2") == 0
    assert export_main(["--checkpoint", str(root / "source"), "--out", str(root / "export")]) == 0
    return root / "source", root / "export"


def checkpoint_weights(run_dir, name, step):
    return load_file(str(run_dir / "checkpoints" / f"step_{step:07d}" / f"{name}.safetensors"))


def meta(run_dir, step):
    return json.loads((run_dir / "checkpoints" / f"step_{step:07d}" / "meta.json").read_text())


class StepZero:
    """Copies of G and D as the first D step sees them: the run's weights before any update."""

    def __init__(self):
        self.generator = self.discriminator = None

    def before_d_step(self, backend, batch):
        if self.generator is None:
            self.generator = copy.deepcopy(backend.generator_module)
            self.discriminator = copy.deepcopy(backend.discriminator_module)


def test_a_run_seeded_from_an_export_draws_its_samples_bitwise_at_step_0(source, tmp_path, capsys):
    run_dir, export = source
    seen = StepZero()
    code = run(tmp_path / "run", f"train.init_from={export}", "train.steps=1", "checkpoint.every=0",
               hooks=TrainHooks(before_d_step=seen.before_d_step))  # fmt: skip
    assert code == 0
    labels = torch.arange(8) % 10
    exported = load_generator(export).sample(8, labels, seed=3)
    assert torch.equal(seen.generator.eval().sample(8, labels, seed=3), exported)
    # an export holds no D: this run's D is its own fresh init, not the source's
    cfg = config(tmp_path)
    torch.manual_seed(cfg.train.seed)  # the trainer's init order: G, then D
    build_generator(cfg.model, cfg.sample_shape)
    fresh_d = build_discriminator(cfg.model, cfg.sample_shape).state_dict()
    source_d = checkpoint_weights(run_dir, "discriminator", 2)
    d_now = seen.discriminator.state_dict()
    assert all(torch.equal(d_now[k], fresh_d[k]) for k in fresh_d)
    assert not torch.equal(d_now["features.0.weight"], source_d["features.0.weight"])
    assert "D starts freshly initialised" in capsys.readouterr().out
    record = meta(tmp_path / "run", 1)
    assert record["init_from"] == {
        "source": str(export), "kind": "export", "checkpoint": None, "step": None, "revision": None
    }  # fmt: skip
    assert record["step"] == 1 and record["images_seen"] == 16  # step 0, no images: counted from here
    # A requeued run resumes its own checkpoint, not the source, and keeps the record.
    assert run(tmp_path / "run", f"train.init_from={export}", "train.steps=2", "checkpoint.every=0") == 0
    assert meta(tmp_path / "run", 2)["init_from"] == record["init_from"]
    assert "exported generator" not in capsys.readouterr().out


def test_a_run_seeded_from_a_run_directory_starts_with_its_g_d_and_ema(source, tmp_path):
    run_dir, _ = source
    cfg = config(tmp_path, f"train.init_from={run_dir}")
    generator, discriminator = (
        build_generator(cfg.model, cfg.sample_shape),
        build_discriminator(cfg.model, cfg.sample_shape),
    )
    ema = build_generator(cfg.model, cfg.sample_shape)
    seed = Seed(open_source(str(run_dir)), None)
    seed.load(generator, discriminator, cfg.model, cfg.sample_shape, print)
    seed.load_ema(ema)
    for network, name in ((generator, "generator"), (discriminator, "discriminator"), (ema, "generator_ema")):
        saved, now = checkpoint_weights(run_dir, name, 2), network.state_dict()
        assert saved.keys() == now.keys()
        assert all(torch.equal(saved[k], now[k]) for k in saved), name
    assert not torch.equal(generator.state_dict()["project.weight"], ema.state_dict()["project.weight"])

    # Through the trainer: step 0 holds the source's G and D, the optimizers start empty.
    seen = StepZero()
    assert run(tmp_path / "run", f"train.init_from={run_dir}", "train.steps=1", "checkpoint.every=0",
               hooks=TrainHooks(before_d_step=seen.before_d_step)) == 0  # fmt: skip
    for network, name in ((seen.generator, "generator"), (seen.discriminator, "discriminator")):
        saved, now = checkpoint_weights(run_dir, name, 2), network.state_dict()
        assert all(torch.equal(saved[k], now[k]) for k in saved), name
    record = meta(tmp_path / "run", 1)
    assert record["init_from"]["step"] == 2 and record["init_from"]["kind"] == "checkpoint"
    assert record["init_from"]["checkpoint"].endswith("step_0000002")


@pytest.mark.parametrize(
    "change, tensor, theirs, ours",
    [
        ("model.d_width=16", "discriminator tensor features.0.weight", "[8, 1, 4, 4]", "[16, 1, 4, 4]"),
        ("model.latent_dim=64", "generator tensor project.weight", "[512, 150]", "[512, 114]"),
    ],
)
def test_a_shape_mismatch_is_one_line_naming_the_tensor_and_both_shapes(
    source, tmp_path, capsys, change, tensor, theirs, ours
):
    run_dir, _ = source
    assert run(tmp_path / "run", f"train.init_from={run_dir}", change, "train.steps=1") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert tensor in err[0] and theirs in err[0] and ours in err[0], err[0]
    assert change.split("=")[0] in err[0]  # the config difference that explains it
    assert (
        not (tmp_path / "run" / "checkpoints").exists() and not (tmp_path / "run" / "metrics.jsonl").exists()
    )


def test_another_architecture_is_refused_naming_both(source, tmp_path):
    cfg = config(tmp_path, "model.arch=resnet", "model.g_width=4", "model.d_width=4")
    nets = build_generator(cfg.model, cfg.sample_shape), build_discriminator(cfg.model, cfg.sample_shape)
    with pytest.raises(TransferError, match="model.arch=dcgan run, this run is model.arch=resnet"):
        Seed(open_source(str(source[0])), None).load(*nets, cfg.model, cfg.sample_shape, print)


def test_init_from_only_seeds_a_fresh_run(source):
    checkpoint = source[0] / "checkpoints" / "step_0000002"
    assert resumed_record(checkpoint, None) is None  # the run continues; it began from scratch
    with pytest.raises(TransferError, match="only seeds a fresh run"):
        resumed_record(checkpoint, str(source[1]))


def discriminator_parameters(discriminator, blocks):
    names = {id(p): n for n, p in discriminator.named_parameters()}
    return [{names[id(p)] for p in block.parameters()} for block in blocks]


def test_freeze_d_keeps_the_first_blocks_bitwise_and_trains_the_rest(tmp_path):
    seen = {}

    def keep_start(backend):
        seen["start"] = copy.deepcopy(backend.discriminator_module.state_dict())
        seen["optimized"] = sum(p.numel() for g in backend.optimizers["d"].param_groups for p in g["params"])

    def after_g_step(backend):  # the G step freezes all of D for a moment: the frozen blocks stay frozen
        trainable = {n for n, p in backend.discriminator_module.named_parameters() if p.requires_grad}
        seen.setdefault("trainable", trainable)

    # lazy R1 (objective.r1_every=4) runs through the frozen blocks on steps 0, 4 and 8
    hooks = TrainHooks(on_backend=keep_start, after_g_step=after_g_step)
    assert run(tmp_path / "run", "train.freeze_d=2", "train.steps=10", "checkpoint.every=0", hooks=hooks) == 0
    cfg = config(tmp_path)
    discriminator = build_discriminator(cfg.model, cfg.sample_shape)
    blocks = discriminator_parameters(
        discriminator, ARCHITECTURES.get("dcgan").discriminator_blocks(discriminator)
    )
    assert len(blocks) == 3
    end = checkpoint_weights(tmp_path / "run", "discriminator", 10)
    for name in blocks[0] | blocks[1]:
        assert torch.equal(end[name], seen["start"][name]), name
    for name in blocks[2] | {"head.weight"}:
        assert not torch.equal(end[name], seen["start"][name]), name
    assert seen["trainable"] == {n for n, _ in discriminator.named_parameters()} - blocks[0] - blocks[1]
    frozen = sum(discriminator.get_parameter(n).numel() for n in blocks[0] | blocks[1])
    assert seen["optimized"] == sum(p.numel() for p in discriminator.parameters()) - frozen


# The parameters that read the image, per family: FreezeD's first block must hold them.
FIRST_BLOCK = {
    "mlp": "net.0.weight",
    "dcgan": "features.0.weight",
    "resnet": "blocks.0.",
    "stylegan2": "blocks.0.from_rgb.",
}
FAMILY = {
    "mlp": ["model.arch=mlp", "model.conditioning=concat"],
    "dcgan": [],
    "resnet": ["model.arch=resnet", "model.num_classes=0", "data.label_column=null"],
    "stylegan2": [
        "model.arch=stylegan2",
        "model.num_classes=0",
        "data.label_column=null",
        "model.channel_base=256",
        "model.channel_max=8",
        "model.g_width=64",  # stylegan2 takes its widths from channel_base / channel_max
        "model.d_width=64",
    ],
}


@pytest.mark.parametrize("arch", sorted(FAMILY))
def test_every_family_names_its_discriminator_blocks_from_the_image_inwards(arch, tmp_path):
    cfg = config(tmp_path, *FAMILY[arch])
    discriminator = build_discriminator(cfg.model, cfg.sample_shape)
    blocks = ARCHITECTURES.get(arch).discriminator_blocks(discriminator)
    assert len(blocks) >= 2
    freeze_discriminator_blocks(discriminator, arch, 1)
    frozen = {n for n, p in discriminator.named_parameters() if not p.requires_grad}
    assert frozen == discriminator_parameters(discriminator, blocks)[0]
    assert any(n.startswith(FIRST_BLOCK[arch]) for n in frozen), frozen
    with pytest.raises(TransferError, match=f"has {len(blocks)} blocks here; valid: 0..{len(blocks)}, got"):
        freeze_discriminator_blocks(discriminator, arch, len(blocks) + 1)


def test_a_hub_id_seeds_from_the_snapshot_and_records_its_revision(source, tmp_path, monkeypatch):
    from huggingface_hub import constants

    export = source[1]
    with HubStandIn() as hub:
        hub.commits["me/tiny-gan"] = {p.name: p.read_bytes() for p in export.iterdir()}
        monkeypatch.setattr(constants, "ENDPOINT", hub.url)
        monkeypatch.setattr(
            constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}"
        )
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        found = open_source("me/tiny-gan")
    assert found.kind == "hub" and found.revision == COMMIT and found.record()["source"] == "me/tiny-gan"
    cfg = config(tmp_path, "train.init_from=me/tiny-gan")
    generator = build_generator(cfg.model, cfg.sample_shape)
    Seed(found, None).load(
        generator, build_discriminator(cfg.model, cfg.sample_shape), cfg.model, cfg.sample_shape, print
    )
    labels = torch.arange(8) % 10
    assert torch.equal(
        generator.eval().sample(8, labels, seed=3), load_generator(export).sample(8, labels, seed=3)
    )


def test_the_model_card_says_where_the_weights_began(tmp_path):
    cfg = config(tmp_path)
    record = {"source": "me/tiny-gan", "kind": "hub", "checkpoint": None, "step": None, "revision": COMMIT}
    card = render(cfg, {"step": 5, "init_from": record}, weights="ema", parameters=10, load_as="me/g")
    assert "initialised from `me/tiny-gan` (revision aaaaaaaaaaaa)" in card
    assert "| initialised from | `me/tiny-gan` (revision aaaaaaaaaaaa) |" in card
    assert "initialised from `" not in render(cfg, {"step": 5}, weights="ema", parameters=10, load_as="me/g")
