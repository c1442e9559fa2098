"""A visitor's claim as the market checks it before asking the host."""

import pytest

from market.giveaways import giveaway_claim_request
from market.host_calls import HostCallRefused


@pytest.mark.parametrize(
    ("giveaway", "claim", "booth", "code"),
    [
        ("a b", "c1", 0, "bad_field"),
        ("lamps", "é", 0, "bad_field"),
        ("lamps/../x", "c1", 0, "bad_field"),
        ("x" * 65, "c1", 0, "bad_field"),
        (None, "c1", 0, "bad_field"),
        ("lamps", "c1", -1, "not_here"),  # standing in no booth
        ("lamps", "c1", 0, "no_host"),  # a market on its own holds no giveaways
    ],
)
def test_a_claim_is_checked_before_the_host_is_asked(monkeypatch, giveaway, claim, booth, code):
    monkeypatch.delenv("FABRIC_HOST_CONTROL_URL", raising=False)
    with pytest.raises(HostCallRefused) as refused:
        giveaway_claim_request(market_id=1, entity=5, booth=booth, giveaway=giveaway, claim=claim)
    assert refused.value.code == code
