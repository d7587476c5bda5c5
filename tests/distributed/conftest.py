"""Fixtures for the distributed tests: two "nodes" as network namespaces joined by a veth pair."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

import pytest


@dataclass
class Node:
    namespace: str
    interface: str  # the veth end inside the namespace: GLOO_SOCKET_IFNAME on this node
    address: str

    def prefix(self) -> list[str]:
        """Run a command inside this node's network namespace."""
        return ["ip", "netns", "exec", self.namespace]


def _needs(reason: str) -> None:
    """Skip outside CI; in CI (env CI set) a missing prerequisite is a failure, not a skip."""
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the multi-node test: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def two_nodes():
    """Namespaces dg<pid>a/b, veth dg<pid>a/b-side, 10.77.<n>.1 and .2/24; removed afterwards."""
    if os.geteuid() != 0:
        _needs("network namespaces need root (ip netns add)")
    if shutil.which("ip") is None:
        _needs("the `ip` command (Debian package iproute2) is not installed")
    tag = f"dg{os.getpid() % 100000}"
    subnet = f"10.77.{os.getpid() % 250 + 1}"
    nodes = [Node(f"{tag}a", f"{tag}va", f"{subnet}.1"), Node(f"{tag}b", f"{tag}vb", f"{subnet}.2")]
    commands = [
        ["ip", "netns", "add", nodes[0].namespace],
        ["ip", "netns", "add", nodes[1].namespace],
        ["ip", "link", "add", nodes[0].interface, "type", "veth", "peer", "name", nodes[1].interface],
    ]
    for node in nodes:
        commands += [
            ["ip", "link", "set", node.interface, "netns", node.namespace],
            ["ip", "-n", node.namespace, "addr", "add", f"{node.address}/24", "dev", node.interface],
            ["ip", "-n", node.namespace, "link", "set", node.interface, "up"],
            ["ip", "-n", node.namespace, "link", "set", "lo", "up"],
        ]
    try:
        for command in commands:
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                _needs(f"`{' '.join(command)}` failed: {done.stderr.strip()}")
        yield nodes
    finally:
        for node in nodes:  # deleting a namespace also deletes the veth end inside it
            subprocess.run(["ip", "netns", "del", node.namespace], capture_output=True)
