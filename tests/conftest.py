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


try:  # pytest-xdist (the dev extra): pytest runs with `-n 2 --dist loadfile` (pyproject.toml)
    from xdist.scheduler import LoadFileScheduling
except ImportError:  # without it the suite runs in one process
    LoadFileScheduling = None

if LoadFileScheduling is not None:

    class _FileScheduling(LoadFileScheduling):
        """A test file runs whole on one worker (its module fixtures are built once), and all of
        tests/slurm/ on one worker: its files share one local cluster."""

        def _split_scope(self, nodeid: str) -> str:
            return "tests/slurm" if nodeid.startswith("tests/slurm/") else super()._split_scope(nodeid)

    def pytest_xdist_make_scheduler(config, log):
        return _FileScheduling(config, log)
