"""`python -m distgan.bench quality`: seeds, summary, JSON and the toy scatter picture, on a tiny run."""

import json

import numpy as np
from PIL import Image

from distgan.bench.cli import main

TINY = ["model.g_width=4", "model.d_width=4", "data.batch_size=16", "train.steps=2", "log.sample_every=0"]


def test_quality_benchmark_trains_each_seed_and_writes_json_and_scatter(tmp_path, fresh_accelerate, capsys):
    out = tmp_path / "q.json"
    args = ["quality", "--recipes", "toy_ring", "--seeds", "2", "--truncation", "0.5", "--out", str(out)]
    assert main([*args, *TINY]) == 0
    result = json.loads(out.read_text())["recipes"]["toy_ring"]
    assert [r["seed"] for r in result["seeds"]] == [0, 1]
    for key in ("modes_captured", "high_quality_fraction", "reverse_kl", "wall_s"):
        values = [r[key] for r in result["seeds"]]
        stats = result["summary"][key]
        assert stats["min"] == min(values) and stats["max"] == max(values)
        assert stats["min"] <= stats["median"] <= stats["max"]
    assert result["seeds"][0]["num_modes"] == 8
    assert result["seeds"][0]["truncated_num_modes"] == 8  # the same latents scored truncated, too
    assert json.loads(out.read_text())["environment"]["truncation"] == 0.5
    picture = np.asarray(Image.open(tmp_path / "q_toy_ring.png").convert("RGB"))
    assert picture.shape == (512, 512, 3)
    assert (picture == (220, 30, 30)).all(-1).any()  # the modes' 3-std circles
    assert (picture == (20, 40, 160)).all(-1).any()  # the samples
    assert "median" in capsys.readouterr().out


def test_quality_benchmark_rejects_an_unknown_recipe_before_training(tmp_path, capsys):
    assert main(["quality", "--recipes", "no_such_recipe", "--out", str(tmp_path / "q.json")]) == 2
    assert "no_such_recipe" in capsys.readouterr().err
    assert not (tmp_path / "q.json").exists()
    args = [
        "quality",
        "--recipes",
        "toy_ring,quickstart",
        "--truncation",
        "0.7",
        "--out",
        str(tmp_path / "q.json"),
    ]
    assert main(args) == 2
    assert "--truncation: quickstart is an image recipe" in capsys.readouterr().err
    assert not (tmp_path / "q.json").exists()


def test_quality_benchmark_scores_an_image_recipe_and_writes_its_sample_grid(tmp_path, fresh_accelerate):
    out = tmp_path / "q.json"
    assert main(["quality", "--recipes", "quickstart", "--seeds", "1", "--out", str(out), *TINY]) == 0
    row = json.loads(out.read_text())["recipes"]["quickstart"]["seeds"][0]
    assert sorted(row) == [
        "classes_covered_mnist_classifier",
        "cpu_s",
        "fd1k_mnist_classifier",
        "kid1k_mnist_classifier",
        "kl_generated_vs_real_mnist_classifier",
        "precision1k_mnist_classifier",
        "recall1k_mnist_classifier",
        "seed",
        "wall_s",
    ]
    assert row["seed"] == 0  # the training seed, not the evaluation's sample seed
    assert row["fd1k_mnist_classifier"] > 10 and row["classes_covered_mnist_classifier"] < 10  # 2 steps
    grid = np.asarray(Image.open(tmp_path / "q_quickstart.png"))
    assert (
        grid.shape[:2] == (10 * 28 + 11 * 2,) * 2
    )  # 10 digits of each class, a column per class, 2 px padding


def test_seeds_trained_in_worker_processes_score_exactly_as_in_one_process(tmp_path, fresh_accelerate):
    args = ["quality", "--recipes", "toy_ring", "--seeds", "2", *TINY]
    assert main([*args, "--out", str(tmp_path / "one.json")]) == 0
    assert main([*args, "--jobs", "2", "--out", str(tmp_path / "two.json")]) == 0

    def scores(name):
        result = json.loads((tmp_path / name).read_text())
        rows = result["recipes"]["toy_ring"]["seeds"]
        return result["environment"]["jobs"], [
            {k: v for k, v in r.items() if k not in ("wall_s", "cpu_s")} for r in rows
        ]

    (jobs_one, one), (jobs_two, two) = scores("one.json"), scores("two.json")
    assert (jobs_one, jobs_two) == (1, 2)
    assert [r["seed"] for r in two] == [0, 1] and one == two  # in seed order, with the overrides
