"""`python tests/reliability/spike_worker.py SPIKE_AT_D_STEP[+term] [distgan.train arguments]`

The real `distgan.train` entry point with one test hook: before the given D step (counted from 1
on this process) D's learning rate is set to infinity for that one step, which drives the
weights, and then the losses, to NaN. With `+term` the process also sends itself SIGTERM then (a
preemption that arrives while the state is not finite). Launched as one process or under
`accelerate launch`.
"""

from __future__ import annotations

import os
import signal
import sys

from distgan import train as train_cli
from distgan.trainer import TrainHooks


def main() -> int:
    spike_at, argv = int(sys.argv[1].split("+")[0]), sys.argv[2:]
    terminate = sys.argv[1].endswith("+term")
    seen = {"d_steps": 0}

    def spike(backend, batch) -> None:
        seen["d_steps"] += 1
        if seen["d_steps"] == spike_at:  # once: the rollback restores finite lrs afterwards
            for group in backend.optimizers["d"].param_groups:
                group["lr"] = float("inf")
            if terminate:
                os.kill(os.getpid(), signal.SIGTERM)

    return train_cli.main(argv, hooks=TrainHooks(before_d_step=spike))


if __name__ == "__main__":
    sys.exit(main())
