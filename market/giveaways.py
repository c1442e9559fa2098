"""A visitor claiming an item of a booth's giveaway: asked of the host, which alone writes it.

The host records the claim durably before it answers (host/giveaways.py), so the
`claimed` a visitor is told always stands.
"""

from typing import Any

from market.host_calls import HostCallRefused, host_call

MAX_ID_CHARS = 64


def giveaway_claim_request(
    *, market_id: int, entity: int, booth: int, giveaway: Any, claim: Any
) -> dict[str, Any]:
    """The `claimed` message for a visitor standing in `booth`, or HostCallRefused."""
    for name, value in (("giveaway", giveaway), ("claim", claim)):
        if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_CHARS:
            raise HostCallRefused(
                400, "bad_field", f"'{name}' must be a string of 1 to {MAX_ID_CHARS} characters"
            )
    answer = host_call(
        market_id,
        f"/giveaways/{giveaway}/claim",
        {"character_id": str(entity), "claim_id": claim, "market_id": market_id, "booth": booth},
    )
    # `claim` echoes the request; the item is the character's first, whichever claim won it
    return {"type": "claimed", "giveaway": giveaway, "claim": claim, "item": answer["item"]}
