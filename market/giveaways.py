"""A visitor claiming an item of a booth's giveaway: asked of the host, which alone writes it.

The host records the claim durably before it answers (host/giveaways.py), so the
`claimed` a visitor is told always stands.
"""

import re
from typing import Any
from urllib.parse import quote

from market.host_calls import HostCallRefused, host_call

MAX_ID_CHARS = 64
_ID = re.compile(rf"[A-Za-z0-9._-]{{1,{MAX_ID_CHARS}}}")


def giveaway_claim_request(
    *, market_id: int, entity: int, booth: int, giveaway: Any, claim: Any
) -> dict[str, Any]:
    """The `claimed` message for a visitor standing in `booth`, or HostCallRefused."""
    for name, value in (("giveaway", giveaway), ("claim", claim)):
        if not isinstance(value, str) or not _ID.fullmatch(value):
            raise HostCallRefused(
                400,
                "bad_field",
                f"'{name}' must be 1 to {MAX_ID_CHARS} characters of A-Z a-z 0-9 . _ -",
            )
    if booth < 0:
        raise HostCallRefused(409, "not_here", "stand in the giveaway's booth to claim it")
    answer = host_call(
        market_id,
        f"/giveaways/{quote(giveaway, safe='')}/claim",
        {"character_id": str(entity), "claim_id": claim, "market_id": market_id, "booth": booth},
    )
    # `claim` echoes the request; the item is the character's first, whichever claim won it
    return {"type": "claimed", "giveaway": giveaway, "claim": claim, "item": answer["item"]}
