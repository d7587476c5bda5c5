"""The exported model card declares a license and warns that the training data's terms apply."""

import yaml

from distgan.config import load_config
from distgan.model_card import render


def card(config: str, *overrides: str) -> str:
    cfg = load_config(config, list(overrides))
    return render(cfg, {"step": 2, "images_seen": 32}, weights="raw", parameters=10, load_as="me/g")


def test_the_card_declares_the_license_in_its_hub_metadata():
    text = card("configs/quickstart.yaml")
    header = yaml.safe_load(text.split("---\n")[1])
    assert header["license"] == "apache-2.0"
    assert "## License" in text and "Apache License 2.0" in text
    assert "training data's own terms apply" in text


def test_celeba_cards_say_the_data_is_for_non_commercial_research():
    assert "non-commercial research" in card("configs/celeba_dcgan.yaml")
    assert "non-commercial" not in card("configs/quickstart.yaml")


def test_the_card_names_the_ema_schedule_the_run_used():
    by_images = render(
        load_config(None, ["train.ema_images=10000", "train.ema_rampup=0.05"]),
        {"step": 2, "images_seen": 32}, weights="ema", parameters=10, load_as="me/g",
    )  # fmt: skip
    assert "half-life 10,000 images, ramp-up 0.05" in by_images and "decay 0" not in by_images
    by_steps = render(
        load_config(None, ["train.ema_decay=0.999"]),
        {"step": 2},
        weights="ema",
        parameters=10,
        load_as="me/g",
    )
    assert "decay 0.999 per step" in by_steps
