"""The Hugging Face Hub side of a shared generator: resolve a repo id to a local folder, push a folder.

`huggingface_hub` does the talking (its cache, its token, HF_ENDPOINT, HF_HUB_OFFLINE); this module
only turns its failures into one-line HubErrors that say what to do. It knows nothing of models:
`generation.py` builds the generator from the folder, `export.py` writes the folder.
"""

from __future__ import annotations

import re
from pathlib import Path

from distgan.errors import UserError

# The files of an exported generator (export.py writes them, load_generator reads them).
WEIGHTS = "generator.safetensors"
CONFIG = "config.yaml"
CARD = "README.md"
SAMPLES = "samples.png"
EVAL = "eval.json"
EXPORT_FILES = (WEIGHTS, CONFIG, CARD, SAMPLES, EVAL)
# owner/name as the Hub spells repo ids: letters, digits, '-', '_', '.'; never '..' or a leading '.'.
REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}")


class HubError(UserError):
    """A Hub repo that cannot be read or written: the message says why and what to do."""


def is_repo_id(text: str) -> bool:
    """True for 'owner/name' that is not a local path (a path that exists always wins)."""
    return bool(REPO_ID.fullmatch(text)) and ".." not in text and not Path(text).exists()


def is_export_dir(path: Path) -> bool:
    """An exported generator folder (export.py): weights and config, and not a checkpoint."""
    return (path / WEIGHTS).is_file() and (path / CONFIG).is_file() and not (path / "meta.json").exists()


def check_links(folder: Path) -> None:
    """An export folder's files must be its own: a link is allowed only from a Hub cache snapshot
    (`<repo>/snapshots/<revision>/`) into that repo's `blobs/`, as huggingface_hub writes them."""
    blobs = folder.parent.parent / "blobs" if folder.parent.name == "snapshots" else None
    for name in EXPORT_FILES:
        path = folder / name
        if not path.is_symlink():
            continue
        if blobs is None or path.resolve().parent != blobs.resolve():
            inside = "the snapshot's own blobs/" if blobs else "the folder"
            raise HubError(
                f"{folder}: {name} is a symbolic link leading outside "
                f"{inside}; an export holds its own files: "
                "replace the link with the file, or download the repo again"
            )


def check_repo_id(repo_id: str) -> None:
    if not REPO_ID.fullmatch(repo_id) or ".." in repo_id:
        raise HubError(f"--push-to-hub: {repo_id!r} is not a Hub repo id; valid: owner/name")


def _offline_hint(repo_id: str) -> str:
    return (
        f"{repo_id}: no local folder of that name, not in the Hugging Face cache, and the Hub cannot be reached "
        "(HF_HUB_OFFLINE=1 is set, or there is no network). Download it once while online "
        f"(unset HF_HUB_OFFLINE; `hf download {repo_id}`), or pass a local exported folder"
    )


def download(repo_id: str, revision: str | None = None) -> Path:
    """The local snapshot of `repo_id` (only the files a generator needs), through the HF cache."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        folder = Path(snapshot_download(repo_id, revision=revision, allow_patterns=list(EXPORT_FILES)))
    except (LocalEntryNotFoundError, OfflineModeIsEnabled):
        raise HubError(_offline_hint(repo_id)) from None
    except RepositoryNotFoundError:
        raise HubError(
            f"{repo_id}: no local folder of that name and no such model repo on the Hub (or it is private: log in with `hf auth login` "
            "or set HF_TOKEN)"
        ) from None
    except RevisionNotFoundError:
        raise HubError(f"{repo_id}: revision {revision!r} not found") from None
    except HfHubHTTPError as err:
        raise HubError(f"{repo_id}: the Hub refused the download: {err}") from None
    if not is_export_dir(folder):
        raise HubError(
            f"{repo_id}: not a distgan generator (expected {WEIGHTS} and {CONFIG}, "
            "as `python -m distgan.export` writes them)"
        )
    return folder


def push(folder: Path, repo_id: str, *, private: bool = False, message: str | None = None) -> str:
    """Create `repo_id` (when missing) and commit the export files of `folder`; returns the commit URL."""
    import httpx
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    check_repo_id(repo_id)
    files = [name for name in EXPORT_FILES if (folder / name).is_file()]
    api = HfApi()
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=folder / name) for name in files]
        info = api.create_commit(
            repo_id, operations, commit_message=message or f"Upload distgan generator ({', '.join(files)})"
        )
    except OfflineModeIsEnabled:
        raise HubError(f"--push-to-hub {repo_id}: HF_HUB_OFFLINE=1 is set; unset it to upload") from None
    except HfHubHTTPError as err:
        status = err.response.status_code if err.response is not None else None
        hint = " (log in with `hf auth login` or set HF_TOKEN)" if status in (401, 403) else ""
        raise HubError(f"--push-to-hub {repo_id}: the Hub refused the upload{hint}: {err}") from None
    except httpx.TransportError as err:
        raise HubError(
            f"--push-to-hub {repo_id}: cannot reach the Hub ({err}); {folder} is complete"
        ) from None
    return info.commit_url
