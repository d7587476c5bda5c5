"""Shared fixtures: tiny configs and a clean Accelerate state per in-process training run."""

import pytest

TINY = [
    "model.g_width=8",
    "model.d_width=8",
    "data.batch_size=16",
    "log.every=1",
    "log.sample_every=0",
    "log.num_samples=16",
]


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
