"""distgan.bench: the measurements behind docs/performance.md and docs/quality.md (`python -m distgan.bench`).

    cli.py        the command: sections (a)-(f), the table and the JSON
    runs.py       one function per measurement (the real train(), d steps, FLOPs, collectives)
    reference.py  the hand-written loop the trainer is held against
    scaling.py    1 vs 2 processes (accelerate launch of the --worker mode)
    loader.py     loader-only throughput (`python -m distgan.bench.loader`)

Benchmarks hand the trainer what they need (a timed stream) through train()'s parameters.
Nothing in the package imports distgan.bench.
"""
