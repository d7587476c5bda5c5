"""A worker group restarted by torchrun's elastic agent (`--max-restarts`, `accelerate launch
--max_restarts`) forms its process group apart from the group before it.

The agent keeps one key-value store for the whole launch, across restarts, and torch forms every
group's default process group under the same keys. A restarted process can then read what a dead
one of the previous group wrote: gloo connects to its address and fails ("Connection refused"),
and the lost-contact report would count the dead group's marks as answers. So from the first
restart on, the default process group is formed here, under a prefix naming the restart, before
the Accelerator (which adopts an initialized group). Every process of a group must agree on the
restart count: the agent of each node counts its own, which agree when every node's group
restarts together (the case when a process dies: its peers fail with it).
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch


def restart_count() -> int:
    """Which restart of the worker group this process belongs to (0: the first group, or no agent)."""
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return 0  # not the agent's store (plain python, or a launcher that makes a store per group)
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)


def store_prefix(restart: int) -> str:
    return f"distgan/restart_{restart}/"


def join_restarted_group(timeout_s: int) -> bool:
    """On a restarted group, form the default process group under this restart's prefix; True if
    it did. The first group (and a process without the agent) is left to accelerate as before."""
    dist = torch.distributed
    restart = restart_count()
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if restart == 0 or world_size == 1 or not dist.is_available() or dist.is_initialized():
        return False
    timeout = timedelta(seconds=timeout_s)
    store = dist.TCPStore(
        os.environ["MASTER_ADDR"],
        int(os.environ["MASTER_PORT"]),
        world_size,
        is_master=False,
        timeout=timeout,
    )
    dist.init_process_group(
        "nccl" if torch.cuda.is_available() else "gloo",  # what accelerate would choose
        store=dist.PrefixStore(store_prefix(restart), store),
        rank=int(os.environ["RANK"]),
        world_size=world_size,
        timeout=timeout,
    )
    return True
