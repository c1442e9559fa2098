"""`runhost` runs several real markets, one process each, and `runmarket --market` serves one."""

import asyncio
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from django.core.management import CommandError, call_command

from market.maps import DEMO_PAIR_BOOTHS, market_generate, market_map_layout
from market.models import Market, MarketMap
from market.services import market_sized_ensure
from tests.subprocesses import REPO_ROOT, embedded_environment, run_manage
from zones.core.mapgen import layout_hash
from zones.management.commands import runhost, runmarket

SECRET = "runhost-test-secret-of-at-least-32-chars"


@pytest.fixture
def served(monkeypatch):
    """The plans runmarket would serve, instead of serving them."""
    plans = []

    async def serve_market(*, host, port, announce, plan):
        plans.append(plan)

    monkeypatch.setattr(runmarket, "serve_market", serve_market)
    return plans


@pytest.mark.django_db
def test_runmarket_market_serves_that_market(served):
    market_sized_ensure(booths=2)
    chosen = market_sized_ensure(booths=4)
    call_command("runmarket", market=chosen.pk, walkers=0)
    (plan,) = served
    assert plan.market_id == chosen.pk and len(plan.booths) == 4


@pytest.mark.django_db
def test_runmarket_market_that_does_not_exist_names_the_ones_that_do(served):
    ids = [market_sized_ensure(booths=n).pk for n in (2, 3)]
    with pytest.raises(
        CommandError,
        match=f"--market 999: there is no such market; the markets are {ids[0]}, {ids[1]}",
    ):
        call_command("runmarket", market=999)
    assert served == []


@pytest.mark.django_db
def test_runmarket_market_with_no_markets_at_all_says_so(served):
    with pytest.raises(CommandError, match="there are no markets yet"):
        call_command("runmarket", market=1)


@pytest.mark.django_db
def test_runmarket_market_and_booths_together_are_refused(served):
    market = market_sized_ensure(booths=2)
    with pytest.raises(CommandError, match="--market and --booths cannot be used together"):
        call_command("runmarket", market=market.pk, booths=2)
    assert served == []


@pytest.fixture
def host_run(monkeypatch, settings, tmp_path):
    """What runhost would serve, and the commands it ran first, instead of serving."""
    settings.DATA_DIR = tmp_path
    monkeypatch.delenv("FABRIC_HOST_SECRET", raising=False)
    ran = {"commands": [], "served": []}

    async def host_serve(*, orchestrator, control_socket, secret, start, routes=(), background=()):
        control_socket.close()
        ran["served"].append((orchestrator, secret, list(start)))
        stop = asyncio.Event()
        stop.set()
        for work in background:  # closes the game store, as a stopping host does
            await work(stop)

    monkeypatch.setattr(runhost, "host_serve", host_serve)
    monkeypatch.setattr(runhost, "call_command", lambda *a, **k: ran["commands"].append(a))
    return ran


def free_ports(count: int) -> int:
    """The first of `count` consecutive free loopback ports."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + count > 65_535:
            continue
        try:
            for port in range(base, base + count):
                with socket.socket() as other:
                    other.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise AssertionError("no run of free ports")


def runhost_options(base: int, **more):
    return {"base_port": base, "control_port": base + 5, "walkers": 0, **more}


@pytest.mark.django_db
def test_runhost_migrates_then_serves_every_market_with_its_port(host_run, tmp_path, capsys):
    ids = [market_sized_ensure(booths=n).pk for n in (2, 3)]
    base = free_ports(6)
    call_command("runhost", markets=f"{ids[1]},{ids[0]}", **runhost_options(base))
    assert host_run["commands"] == [("migrate",)]
    ((orchestrator, secret, start),) = host_run["served"]
    assert {m: s.port for m, s in orchestrator.slots.items()} == {ids[1]: base, ids[0]: base + 1}
    assert orchestrator.default_market == ids[1] and start == [ids[1], ids[0]]
    # a generated secret, private to its owner, that the printed curl line reads
    path = tmp_path / "host.secret"
    assert path.read_text().strip() == secret and len(secret) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    out = capsys.readouterr().out
    assert f"market {ids[1]} (Market of 3 booths): http://127.0.0.1:{base}/" in out
    assert (
        f'curl -H "X-Fabric-Host-Secret: $(cat {path})" http://127.0.0.1:{base + 5}/health' in out
    )
    # the next start keeps the same secret
    call_command("runhost", markets=str(ids[0]), **runhost_options(base))
    assert host_run["served"][1][1] == secret


@pytest.mark.django_db
def test_runhost_takes_the_secret_from_the_environment(host_run, monkeypatch, tmp_path, capsys):
    market = market_sized_ensure(booths=2)
    monkeypatch.setenv("FABRIC_HOST_SECRET", SECRET)
    call_command("runhost", markets=str(market.pk), lazy=True, **runhost_options(free_ports(6)))
    assert host_run["served"][0][1] == SECRET and not (tmp_path / "host.secret").exists()
    assert '"X-Fabric-Host-Secret: $FABRIC_HOST_SECRET"' in capsys.readouterr().out


@pytest.mark.django_db
def test_runhost_lazy_starts_only_the_default_market(host_run):
    ids = [market_sized_ensure(booths=n).pk for n in (2, 3)]
    options = runhost_options(free_ports(6), default_market=ids[1], lazy=True)
    call_command("runhost", markets=f"{ids[0]},{ids[1]}", **options)
    assert host_run["served"][0][2] == [ids[1]]


@pytest.mark.django_db
@pytest.mark.django_db
def test_runhost_demo_runs_two_markets_linked_by_portals_made_once(host_run):
    call_command("runhost", demo=True, **runhost_options(free_ports(6)))
    ((orchestrator, _, start),) = host_run["served"]
    north, south = (Market.objects.get(slug=slug) for slug in ("north-market", "south-market"))
    assert start == [north.pk, south.pk] and orchestrator.default_market == north.pk
    layouts = {m.pk: market_map_layout(m) for m in (north, south)}
    assert [p["target"] for p in layouts[north.pk]["portals"]] == [south.pk]
    assert [p["target"] for p in layouts[south.pk]["portals"]] == [north.pk]
    recorded = MarketMap.objects.get(market=north).layout_sha256
    assert recorded == layout_hash(layouts[north.pk])  # the map the dashboard checks
    assert north.booths.count() == south.booths.count() == DEMO_PAIR_BOOTHS
    call_command("runhost", demo=True, **runhost_options(free_ports(6)))
    assert host_run["served"][1][2] == [north.pk, south.pk]  # the same pair, not a new one
    assert Market.objects.count() == 2


@pytest.mark.django_db
def test_runhost_demo_refuses_half_a_pair(host_run):
    market_generate(name="North Market", slug="north-market", config={"seed": 1, "booths": 2})
    with pytest.raises(CommandError, match="only north-market of the demo pair exists"):
        call_command("runhost", demo=True, **runhost_options(free_ports(6)))


@pytest.mark.parametrize(
    ("markets", "options", "message"),
    [
        ("1,x", {}, "--markets takes market ids separated by commas \\(1,2\\), not 'x'"),
        ("", {}, "give --markets 1,2 \\(market ids\\) or --demo"),
        ("1", {"demo": True}, "give --markets 1,2 \\(market ids\\) or --demo"),
        ("1,1", {}, "--markets names market 1 twice"),
        ("1", {"default_market": 2}, "--default-market 2 is not one of --markets 1"),
        ("1", {"walkers": -1}, "--walkers cannot be negative"),
        ("1", {"base_port": 0}, "--base-port must leave a port for each of 1 markets"),
        ("1", {"control_port": 70_000}, "--control-port must be 1 to 65535, not 70000"),
    ],
)
def test_runhost_bad_options_are_refused_by_name(host_run, markets, options, message):
    merged = {**runhost_options(free_ports(6)), **options}
    with pytest.raises(CommandError, match=message):
        call_command("runhost", markets=markets, **merged)
    assert host_run["served"] == []


@pytest.mark.django_db
def test_runhost_unknown_markets_are_named_with_the_ones_there_are(host_run):
    market = market_sized_ensure(booths=2)
    with pytest.raises(CommandError, match=f"no market 998, 999; the markets are {market.pk}"):
        call_command("runhost", markets=f"{market.pk},998,999", **runhost_options(free_ports(6)))
    assert host_run["served"] == []


@pytest.mark.django_db
def test_runhost_refuses_a_short_secret(host_run, monkeypatch):
    market = market_sized_ensure(booths=2)
    monkeypatch.setenv("FABRIC_HOST_SECRET", "too-short")
    with pytest.raises(
        CommandError, match="FABRIC_HOST_SECRET holds 9 characters; it needs at least 32"
    ):
        call_command("runhost", markets=str(market.pk), **runhost_options(free_ports(6)))


@pytest.mark.django_db
def test_runhost_refuses_a_secret_file_others_may_read(host_run, tmp_path):
    market = market_sized_ensure(booths=2)
    path = tmp_path / "host.secret"
    path.write_text("y" * 40)
    path.chmod(0o644)
    with pytest.raises(CommandError, match=f"others may read it \\(mode 644\\).*chmod 600 {path}"):
        call_command("runhost", markets=str(market.pk), **runhost_options(free_ports(6)))


@pytest.mark.django_db
def test_runhost_refuses_a_bad_tunable_by_its_variable(host_run, monkeypatch):
    monkeypatch.setenv("FABRIC_HOST_QUARANTINE_MS", "soon")
    with pytest.raises(CommandError, match="FABRIC_HOST_QUARANTINE_MS must be a whole number"):
        call_command("runhost", markets="1", **runhost_options(free_ports(6)))


@pytest.mark.django_db
@pytest.mark.parametrize("taken", ["market", "control"])
def test_runhost_names_a_port_that_is_taken(host_run, taken):
    market = market_sized_ensure(booths=2)
    base = free_ports(6)
    port = base if taken == "market" else base + 5
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen(1)
        with pytest.raises(CommandError, match=f"cannot listen on 127.0.0.1:{port}"):
            call_command("runhost", markets=str(market.pk), **runhost_options(base))
    assert host_run["served"] == []


@pytest.mark.django_db
def test_runhost_control_port_cannot_be_a_markets_port(host_run):
    market = market_sized_ensure(booths=2)
    base = free_ports(6)
    with pytest.raises(CommandError, match=f"--control-port {base} is also a market's port"):
        call_command("runhost", markets=str(market.pk), **runhost_options(base, control_port=base))


# The whole host, live: two real markets, one killed.

STARTUP_S = 60.0


def control_get(port: int, path: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"X-Fabric-Host-Secret": SECRET}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def wait_for(condition, what: str, process: subprocess.Popen, log_path) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"runhost exited with {process.returncode}:\n{log_path.read_text()}"
            )
        try:
            if condition():
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    raise AssertionError(f"gave up waiting until {what}:\n{log_path.read_text()[-4000:]}")


def markets_by_id(port: int) -> dict[int, dict]:
    return {m["market_id"]: m for m in control_get(port, "/health")["markets"]}


def test_runhost_serves_two_real_markets_and_brings_a_killed_one_back(tmp_path):
    env = embedded_environment(tmp_path, PYTHONUNBUFFERED="1", FABRIC_HOST_SECRET=SECRET)
    env["FABRIC_HOST_HEARTBEAT_MS"] = "500"
    assert run_manage("migrate", "--noinput", env=env).returncode == 0
    for name, seed in (("North", "1"), ("South", "2")):
        made = run_manage("market_generate", name, "--booths", "2", "--seed", seed, env=env)
        assert made.returncode == 0, made.stderr
    base = free_ports(3)
    control = base + 2
    log_path = tmp_path / "runhost.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                str(REPO_ROOT / "manage.py"),
                "runhost",
                "--markets",
                "1,2",
                "--base-port",
                str(base),
                "--control-port",
                str(control),
                "--walkers",
                "5",
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        ready = lambda: all(m["state"] == "ready" for m in markets_by_id(control).values())  # noqa: E731
        wait_for(ready, "both markets are ready", process, log_path)
        health = markets_by_id(control)
        assert sorted(health) == [1, 2]
        for market_id, port in ((1, base), (2, base + 1)):
            assert health[market_id]["port"] == port
            assert http_status(f"http://127.0.0.1:{port}/healthz") == 200
        killed, survivor = health[2]["pid"], health[1]["pid"]
        os.kill(killed, signal.SIGKILL)

        back = lambda: markets_by_id(control)[2]["restarts"] == 1  # noqa: E731
        wait_for(back, "market 2 is restarted", process, log_path)
        # while it comes back, market 1 serves and the orchestrator answers
        assert http_status(f"http://127.0.0.1:{base}/healthz") == 200
        assert markets_by_id(control)[1]["state"] == "ready"
        wait_for(ready, "market 2 is ready again", process, log_path)
        health = markets_by_id(control)
        assert health[2]["pid"] != killed and health[1]["pid"] == survivor
        assert health[1]["restarts"] == 0 and health[2]["last_exit"] == "exited with -9"
        assert http_status(f"http://127.0.0.1:{base + 1}/healthz") == 200
        pids = [m["pid"] for m in health.values()]
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert code == 0, log_path.read_text()[-4000:]
    for pid in pids:  # every market process stopped with it
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert "Fabric host stopped" in log_path.read_text()
