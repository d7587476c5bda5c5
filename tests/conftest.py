"""Shared fixtures: tiny configs and a clean Accelerate state per in-process training run."""

import pytest

from tests.launching import TINY_OVERRIDES as TINY  # noqa: F401  (re-exported for tests)


@pytest.fixture
def fresh_accelerate():
    """Accelerate keeps process-wide singleton state; reset it around in-process runs."""
    from accelerate.state import AcceleratorState, GradientState, PartialState

    def reset():
        AcceleratorState._reset_state(True)
        GradientState._reset_state()
        PartialState._reset_state()

    reset()
    yield
    reset()


@pytest.fixture(scope="session", autouse=True)
def private_distgan_cache(tmp_path_factory):
    """Evaluation references are cached under $DISTGAN_CACHE: keep the tests' out of ~/.cache."""
    import os

    os.environ.setdefault("DISTGAN_CACHE", str(tmp_path_factory.mktemp("distgan_cache")))


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models: on a busy machine extra intra-op threads only spin (several times slower).
    A module opts in with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """Under `pytest -n N --dist loadgroup` a test file runs on one worker (its module fixtures
    are built once), and tests/slurm/ runs on one worker: its files share one local cluster."""
    for item in items:
        group = "slurm" if "slurm" in item.path.parent.parts else item.module.__name__
        item.add_marker(pytest.mark.xdist_group(group))
