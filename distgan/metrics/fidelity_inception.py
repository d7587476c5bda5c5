"""eval.inception_weights=auto: the standard FID Inception-v3 through torch-fidelity (`pip install 'distgan[fid]'`).

torch-fidelity ships the TensorFlow FID graph ported to PyTorch (bit-compatible with the original
FID code); its weights are one file that we fetch into torch hub's checkpoint cache
(`$TORCH_HOME/hub/checkpoints`, default ~/.cache/torch) when online. Offline (HF_HUB_OFFLINE=1, or
no network) the error says which URL to download and where to put it. A download, and the file
found in the cache, must have the file's published SHA-256; a file that does not is refused with one line saying which file to delete. The file is read with
`torch.load(weights_only=True)`: nothing but tensors is unpickled from it. Features: the 2048-d
pool layer; class probabilities: softmax of the unbiased logits (what the Inception Score uses).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from pathlib import Path

import torch

from distgan.metrics.errors import MetricsError
from distgan.metrics.images import as_8bit_rgb

# torch-fidelity's release asset (torch_fidelity.feature_extractor_inceptionv3.URL_INCEPTION_V3).
WEIGHTS_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
DOWNLOAD_TIMEOUT_S = 30
# SHA-256 of that file (its name carries the first 8 digits, torch hub's convention).
WEIGHTS_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def check_hash(path: Path, shown: Path) -> None:
    """MetricsError unless `path`'s SHA-256 is WEIGHTS_SHA256 (`shown`: the name to report)."""
    got = sha256_of(path)
    if got != WEIGHTS_SHA256:
        raise MetricsError(
            f"eval.inception_weights=auto: {shown} has SHA-256 {got[:16]}..., expected {WEIGHTS_SHA256[:16]}... "
            f"(a truncated or replaced download); delete it and run again, or download {WEIGHTS_URL} yourself"
        )


def weights_path() -> Path:
    """Where auto looks for (and downloads) the weights: torch hub's checkpoint cache."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_URL.rsplit("/", 1)[1]


def _offline_message(path: Path, why: str) -> str:
    return (
        f"eval.inception_weights=auto: the FID Inception weights are not at {path} and cannot be downloaded "
        f"({why}). On a machine with internet download {WEIGHTS_URL} and copy it to {path} "
        "(set TORCH_HOME to move that cache), then run again; also `pip install 'distgan[fid]'` "
        "(torch-fidelity). Or set eval.inception_weights=PATH to the TorchScript inception-2015-12-05.pt"
    )


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")


def _download(path: Path) -> None:
    if _offline():
        raise MetricsError(_offline_message(path, "HF_HUB_OFFLINE is set"))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}.{os.getpid()}")
    try:
        with (
            urllib.request.urlopen(WEIGHTS_URL, timeout=DOWNLOAD_TIMEOUT_S) as response,
            open(tmp, "wb") as f,
        ):
            while block := response.read(1 << 20):
                f.write(block)
    except OSError as err:  # URLError, timeouts and refused connections are all OSErrors
        tmp.unlink(missing_ok=True)
        raise MetricsError(_offline_message(path, f"{type(err).__name__}: {err}")) from None
    try:
        check_hash(tmp, path)
    except MetricsError:
        tmp.unlink(missing_ok=True)  # never leave a bad file where the next run would find it
        raise
    os.replace(tmp, path)


class FidelityInceptionExtractor:
    """2048-d pool features and 1008-way class probabilities of torch-fidelity's FID Inception-v3."""

    name = "inception"
    num_classes = 0
    feature_dim = 2048
    prediction_shape = (1008,)  # class probabilities, when asked for (Inception Score)

    def __init__(self, device: str | torch.device) -> None:
        path = weights_path()
        try:
            from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
        except ImportError as err:
            FeatureExtractorInceptionV3, missing = None, err
        if not path.is_file() and (FeatureExtractorInceptionV3 is not None or _offline()):
            _download(path)  # offline: the message says what to download where, and to install the extra
        if path.is_file():
            check_hash(path, path)  # also a file someone else put in the cache
        if FeatureExtractorInceptionV3 is None:
            raise MetricsError(
                f"eval.inception_weights=auto needs torch-fidelity ({missing}): pip install 'distgan[fid]'; "
                "or set eval.inception_weights=PATH to the TorchScript inception-2015-12-05.pt"
            )
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # a truncated download or another file: say which file to replace
            raise MetricsError(
                f"eval.inception_weights=auto: {path} is not the weights file ({err}); delete it"
            ) from None
        # torch-fidelity's constructor unpickles its file with weights_only=False: hand it one we just
        # wrote ourselves from plain tensors, never the downloaded file.
        with tempfile.TemporaryDirectory() as tmp:
            safe = Path(tmp) / "inception.pth"
            torch.save(state, safe)
            self.model = FeatureExtractorInceptionV3(
                "inception-v3-compat", ["2048", "logits_unbiased"], feature_extractor_weights_path=str(safe)
            )
        self.model = self.model.to(device).eval()
        self.device = torch.device(device)
        self.probabilities = False  # set by the evaluation when the Inception Score is requested

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        images = as_8bit_rgb(x, self.device)
        features, logits = self.model(images)
        probs = torch.softmax(logits.double(), dim=1).float() if self.probabilities else None
        return features.reshape(features.shape[0], -1).float(), probs
