"""Configs and vectors the Python, Node and Chromium tests of the map generator share."""

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import service_missing
from tests.subprocesses import REPO_ROOT
from zones.core.prng32 import mix32

VECTORS_PATH = REPO_ROOT / "tests" / "mapgen_vectors.json"
NODE_RUN = REPO_ROOT / "tests" / "mapgen" / "node_run.mjs"
SEEDS = 1000

# Each seed is generated with every one of these: the three arrangements, few and many
# booths, small and large bounds, every prop set, portals on every side.
BASE_CONFIGS: tuple[dict[str, Any], ...] = (
    {
        "market_id": 11,
        "booths": 9,
        "arrangement": "grid",
        "prop_sets": ["market", "lanterns"],
        "portals": [{"side": "north", "at": 250, "target": 12}],
    },
    {
        "market_id": 12,
        "instance_id": 3,
        "booths": 32,
        "arrangement": "ring",
        "bounds_m": [192, 192],
        "prop_sets": ["garden", "workshop"],
        "item_density": 40,
        "portals": [{"side": "east", "at": 500}, {"side": "west", "at": 0, "target": 11}],
    },
    {
        "market_id": 13,
        "booths": 6,
        "arrangement": "rows",
        "bounds_m": [96, 48],
        "floor": {"aisle_cm": 600, "wall_cm": 30, "inset_cm": 150},
        "prop_sets": ["workshop", "market", "garden", "lanterns"],
        "npc_density": 300,
        "portals": [{"side": "south", "at": 1000}],
    },
)


def vectors() -> dict[str, Any]:
    return json.loads(VECTORS_PATH.read_text())


def seeded_configs() -> list[dict[str, Any]]:
    """SEEDS seeds spread over the whole 32-bit range (0 and 2^32 - 1 among them), each with
    every base config, its booth count varied with the seed."""
    seeds = [0, 0xFFFFFFFF] + [mix32(i) for i in range(1, SEEDS - 1)]
    configs = []
    for i, seed in enumerate(seeds):
        for base in BASE_CONFIGS:
            config = dict(base, seed=seed)
            config["booths"] = 1 + (base["booths"] + i) % base["booths"]
            configs.append(config)
    return configs


def node_executable() -> str:
    node = shutil.which("node") or ("/usr/bin/node" if os.path.exists("/usr/bin/node") else None)
    if node is None:
        service_missing(
            "Node is not installed; install Debian's package: apt-get install -y nodejs"
        )
    return str(node)


def node_answer(
    script: Path,
    request: Any,
    tmp_path: Path,
    *,
    timeout: float = 60,
    env: dict[str, str] | None = None,
) -> Any:
    """What the Node `script` prints (JSON) for `request`, handed to it as a JSON file."""
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request))
    done = subprocess.run(
        [node_executable(), str(script), str(path)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def node_run(request: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """What tests/mapgen/check.mjs answers to `request` under Node."""
    return node_answer(NODE_RUN, request, tmp_path, timeout=300)
