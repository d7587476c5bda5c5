"""Why `distributed.backend: fsdp` is refused: FSDP2 loses the penalty's double backward.

tests/distributed/fsdp2_probe.py runs one D update with the gradient penalty (WGAN-GP and R1:
`autograd.grad(..., create_graph=True)` on D's input, then ONE backward) on 1 process and, with
D wrapped in `fully_shard`, on 2 gloo processes. Measured with torch 2.13 (CPU, gloo):
- default FSDP2: the final backward crashes on parameter storage that FSDP freed after the
  penalty's inner backward ("setStorage: ... out of bounds for storage of size 0");
- with `reshard_after_forward=False` and `set_reshard_after_backward(False)` (the upstream
  suggestion, pytorch issue 172543), FSDP reduce-scatters at the penalty's inner backward, and
  the parameters get NO gradient from the final backward: training would silently not happen.
This test keeps the verdict honest: when a torch release fixes it, it fails, and `fsdp` can be
offered (with the 1 = N processes equivalence test the other backends pass).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.launching import REPO, cpu_env, free_port

PROBE = REPO / "tests" / "distributed" / "fsdp2_probe.py"


def results(lines: str) -> list[dict]:
    return [json.loads(line) for line in lines.splitlines() if line.startswith('{"case"')]


@pytest.mark.slow
def test_fsdp2_cannot_train_with_the_gradient_penalty(tmp_path):
    env = cpu_env(OMP_NUM_THREADS="1")
    one = subprocess.run(
        [sys.executable, str(PROBE), "--out", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert [r["ok"] for r in results(one.stdout)] == [True] * 4, (
        one.stdout + one.stderr
    )  # the probe itself works
    two = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
         str(PROBE), "--out", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    found = {(r["case"], r["reshard"]): r for r in results(two.stdout)}
    assert len(found) == 4, two.stdout + two.stderr
    for kind in ("wgan-gp", "r1"):
        assert not found[kind, True]["ok"] and "storage of size 0" in found[kind, True]["error"]
        assert (
            not found[kind, False]["ok"] and "no gradient after the backward" in found[kind, False]["error"]
        )
