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
