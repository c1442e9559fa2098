"""A load run against the in-test market (tests/zones/client/fake_market.py): no Django."""

import numpy as np
import pytest

from tests.zones.client.fake_market import FakeMarket
from zones.load.runner import LoadError, LoadRun, RunSettings, handoff_times


def settings(market: FakeMarket, **overrides) -> RunSettings:
    values = {
        "url": market.base_url,
        "market_id": 1,
        "visitors": 9,
        "scenario": "all",
        "duration_s": 2.0,
        "ramp_up_s": 0.5,
        "join_retry_s": 0.5,
        "probe_retry_s": 0.5,
    }
    return RunSettings(**{**values, **overrides})


async def test_a_run_joins_everyone_drives_them_and_records_every_second():
    lines = []
    async with FakeMarket() as market:
        record = await LoadRun(settings(market), lines.append).run()
        joined = {r.entity for r in market.received}
        still_there = [e for e in market.entities.values() if e.socket is not None]
    assert [v.joined for v in record.visitors] == [True] * 9
    assert {v.scenario for v in record.visitors} == {"crowd", "choke", "browse"}
    assert len(joined) >= 3  # visitors sent inputs: the scenarios walk them
    assert still_there == []  # and they left at the end
    steady = [s for s in record.seconds if s.steady]
    assert len(steady) >= 2 and record.steady_s >= 2.0
    ages = np.concatenate([p.ages() for s in steady for p in s.scenarios.values()])
    # frames of every steady second (20 a visitor on a quiet machine; at least one)
    assert ages.size >= 9 * len(steady) and np.isfinite(ages).all()
    assert all(v.steady_frames > 0 and v.steady_bytes > 0 for v in record.visitors)
    assert record.seconds[-1].cpu_s["harness"] > 0
    assert any("visitors 9/9" in line and "p99 so far" in line for line in lines)


async def test_a_market_that_refuses_visitors_stops_the_run_with_its_reason():
    async with FakeMarket() as market:
        market.live = False
        with pytest.raises(LoadError, match="refuses visitors: 409 market_not_live"):
            await LoadRun(settings(market), lambda _: None).run()


async def test_a_run_in_which_nobody_joins_is_an_error_not_a_report():
    class JoinsFailAfterTheProbe(LoadRun):
        async def probe(self):
            layout = await super().probe()
            market.live = False
            return layout

    async with FakeMarket() as market:
        with pytest.raises(LoadError, match="none of the 3 visitors could join"):
            await JoinsFailAfterTheProbe(settings(market, visitors=3), lambda _: None).run()


async def test_a_join_given_up_after_the_ramp_up_says_why_it_was_refused_until_then(monkeypatch):
    monkeypatch.setattr("zones.load.runner.JOIN_GRACE_S", 1.0)

    class BoothsFullAfterTheProbe(LoadRun):
        async def probe(self):
            layout = await super().probe()
            market.refuse_all = ("booth_full", "booth 0 is full")
            return layout

    async with FakeMarket() as market:
        with pytest.raises(LoadError) as failed:
            await BoothsFullAfterTheProbe(
                settings(market, visitors=3, join_retry_s=30.0), lambda _: None
            ).run()
    assert str(failed.value).endswith(
        "still joining 1 s after the ramp-up, refused until then: VisitorClosed: socket closed"
        " with 4503 'booth_full' after error 'booth_full'"
    )


def test_handoff_time_runs_from_entering_a_booth_to_the_zone_changing_to_it():
    events = [
        {"type": "booth_entered", "zone": 2, "received_ms": 1000.0},
        {"type": "booth_entered", "zone": 1, "received_ms": 1500.0},
        {"type": "zone_changed", "from": 0, "to": 1, "received_ms": 5600.0},
        {"type": "zone_changed", "from": 1, "to": 3, "received_ms": 6000.0},  # never entered
    ]
    assert handoff_times(events) == [4100.0]
