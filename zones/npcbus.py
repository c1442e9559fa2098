"""NPC decisions on the channel layer: between zone workers and contributor dispatchers.

Three messages, all plain data:

* zone → dispatcher, on `dispatch_channel(market)`: ``{"type": "npc.requests", "zone": z,
  "issued_ms": t, "observations": [...], "results": [[npc, lease, reason], ...]}``: the
  decision requests the tick of wall-clock `t` issued, each an observation
  (zones/core/observe.py), and what the zone made of the answers it was handed (reason
  names of wire.REASON_NAMES). A dispatcher takes no request past its 5 s deadline:
  messages that waited on the channel while nobody received it are dropped.
* dispatcher → zone, on the zone's channel: ``{"type": "npc.answers", "rows": bytes}``,
  ANSWER_DTYPE rows already parsed and checked against their contributor's leases;
  the zone checks them again, against its own state, in its next tick.
* dispatcher → zone, on the zone's channel, every PRESENT_EVERY_S:
  ``{"type": "npc.present", "until_ms": t}``: contributors are connected, so until
  `t` the zone sends its due decisions out as requests instead of deciding them itself.
  A zone that stops hearing this goes back to its own utility decisions by `t`.

And one for operators: every STATUS_EVERY_S each zone worker sends ``{"type":
"npc.status", "frame": bytes}`` to the group `status_group(market)`, which every
operator's dashboard socket joins: the NPC status frame of the zones it hosts
(zones/core/npcview.py), relayed to the page as it is.
"""

from typing import Any

import numpy as np

from zones.core.wire import ANSWER_DTYPE, from_bytes

REQUESTS = "npc.requests"
ANSWERS = "npc.answers"
PRESENT = "npc.present"
STATUS = "npc.status"
TYPES = frozenset({ANSWERS, PRESENT})
"""The NPC messages a zone receives."""

PRESENT_EVERY_S = 1.0
PRESENT_FOR_MS = 3000
STATUS_EVERY_S = 1.0
STATUS_RENEW_S = 20.0
"""How often a member renews its place in the status group (the layer forgets members
after its group_expiry, 60 s, so that a killed process stops being sent to)."""


def dispatch_channel(market_id: int) -> str:
    """The channel contributor dispatchers receive a market's decision requests on."""
    return f"npcdispatch.{market_id}"


def status_group(market_id: int) -> str:
    """The group of a market's operator sockets, sent the NPC status frames."""
    return f"npcstatus.{market_id}"


def status_message(frame: bytes) -> dict[str, Any]:
    return {"type": STATUS, "frame": frame}


def answers_message(rows: np.ndarray) -> dict[str, Any]:
    return {"type": ANSWERS, "rows": np.ascontiguousarray(rows, ANSWER_DTYPE).tobytes()}


def answers_from(message: dict[str, Any]) -> np.ndarray:
    return from_bytes(message["rows"], ANSWER_DTYPE, "npc answers")
