"""Markets for the gateway's benches: merged views of visitor roots, numpy only."""

import numpy as np

from zones.core.wire import ROW_DTYPE, RowFlag

BOOTHS = 32


def market_view(visitors: int, rng: np.random.Generator) -> np.ndarray:
    """Visitor roots: a third at an entrance, a third in a choke point, a third spread."""
    third = visitors // 3
    crowd = rng.normal((20.0, 0.0, 20.0), (2.5, 0.0, 2.5), (third, 3))
    choke = np.column_stack(
        [rng.uniform(60, 68, third), np.zeros(third), rng.normal(64, 0.8, third)]
    )
    spread = rng.uniform((0, 0, 0), (128, 0, 128), (visitors - 2 * third, 3))
    rows = np.zeros(visitors, ROW_DTYPE)
    rows["id"] = np.arange(visitors, dtype=np.uint64) + 1
    rows["pos"] = np.clip(np.concatenate([crowd, choke, spread]), 0.5, 127.5)
    rows["pos"][:, 1] = 1.0
    rows["vel"] = rng.normal(0, 0.8, (visitors, 3)) * (1, 0, 1)
    rows["flags"] = RowFlag.AUTHORITATIVE | RowFlag.VISITOR_ROOT
    rows["zone"] = rng.integers(0, BOOTHS, visitors)
    return rows
