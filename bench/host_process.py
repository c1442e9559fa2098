"""A host for the benches: `runhost` of two generated markets linked by portals, its
control API, and kills of its market processes timed until they serve again."""

import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.processes import LOG_TAIL_LINES, REPO_ROOT, BenchError, free_port, manage
from market.rates import JOIN_LIMIT_DEFAULTS

STARTUP_S = 180.0  # two markets starting on a loaded 2-core machine
RECOVERY_TIMEOUT_S = 120.0
POLL_S = 0.05
BACKOFF_FIRST_S = 0.5  # the orchestrator's first restart delay, doubled each crash in a row
SECRET_VARIABLE = "FABRIC_HOST_SECRET"
# Settings from the caller's shell that would move the host off its embedded default (the
# game store included: the figures are for SQLite).
FOREIGN_VARIABLES = (
    "REDIS_URL",
    "DATABASE_URL",
    "DJANGO_SETTINGS_MODULE",
    "DJANGO_SECRET_KEY",
    "FABRIC_DEBUG",
    "ALLOWED_HOSTS",
    "CHUNK_STORE_DIR",
    "FABRIC_MARKET_ID",
    "FABRIC_CHANNEL_PREFIX",
    "FABRIC_HOST_DATABASE_URL",
    "FABRIC_HOST_CONTROL_URL",
    "FABRIC_HOST_MARKET_ID",
)


@dataclass
class Host:
    """A running `runhost` of markets 1 and 2, and how to reach it."""

    base_port: int
    control_port: int
    secret: str
    process: subprocess.Popen[bytes]
    log_path: Path
    started_s: float  # from the runhost process's start to both markets ready

    def market_url(self, market_id: int) -> str:
        """The base URL of market 1 or 2."""
        return f"http://127.0.0.1:{self.base_port + market_id - 1}"

    def log_tail(self) -> str:
        """The last lines runhost and its markets wrote."""
        lines = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(lines[-LOG_TAIL_LINES:])


def host_environment(*, data_dir: Path, secret: str) -> dict[str, str]:
    """The environment of the host: embedded settings, its secret, no join limits."""
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN_VARIABLES}
    env.update(FABRIC_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1", **{SECRET_VARIABLE: secret})
    env.update(dict.fromkeys(JOIN_LIMIT_DEFAULTS, "off"))
    return env


def control_get(*, host: Host, path: str) -> dict[str, Any]:
    """GET `path` of the host's control API, with its secret."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{host.control_port}{path}",
        headers={"X-Fabric-Host-Secret": host.secret},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return dict(json.loads(response.read()))


def markets_health(*, host: Host) -> dict[int, dict[str, Any]]:
    """Each market's report in the orchestrator's /health, by market id."""
    return {m["market_id"]: m for m in control_get(host=host, path="/health")["markets"]}


def healthz_answers(*, url: str) -> bool:
    """Whether the market at `url` answers /healthz with 200."""
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def markets_ready(*, host: Host) -> bool:
    """Whether the orchestrator reports both markets ready (False while it cannot answer)."""
    if host.process.poll() is not None:
        raise BenchError(f"runhost exited with {host.process.returncode}:\n{host.log_tail()}")
    try:
        return all(m["state"] == "ready" for m in markets_health(host=host).values())
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def host_running(*, workdir: Path, walkers: int, booths: int) -> Iterator[Host]:
    """Two generated markets linked by portals, served by runhost until the block ends."""
    secret = secrets.token_urlsafe(32)
    env = host_environment(data_dir=workdir / "data", secret=secret)
    manage(env, "migrate", "--noinput")
    for name, seed, portal in (("North", "1", "south:500:2"), ("South", "2", "north:500:1")):
        made = ("market_generate", name, "--booths", str(booths), "--seed", seed)
        manage(env, *made, "--portal", portal)
    base = ports_free(count=3)  # two markets and the control API
    ports = ["--base-port", str(base), "--control-port", str(base + 2)]
    argv = [sys.executable, str(REPO_ROOT / "manage.py"), "runhost", "--markets", "1,2"]
    log_path = workdir / "runhost.log"
    started = time.monotonic()
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [*argv, *ports, "--walkers", str(walkers)],
            cwd=REPO_ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    host = Host(base, base + 2, secret, process, log_path, 0.0)
    try:
        until(lambda: markets_ready(host=host), what="both markets ready", seconds=STARTUP_S)
        host.started_s = time.monotonic() - started
        yield host
    except Exception:
        # whatever stopped the bench, the host's own account of it goes with the traceback
        print(f"runhost's last lines:\n{host.log_tail()}", file=sys.stderr)
        raise
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


def ports_free(*, count: int) -> int:
    """The first of `count` consecutive loopback ports nothing listens on right now."""
    for _ in range(50):
        base = free_port()
        if base + count > 65_535:
            continue
        try:
            for port in range(base, base + count):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise BenchError(f"found no {count} consecutive free ports")


def until(condition: Callable[[], bool], *, what: str, seconds: float) -> float:
    """Poll `condition` every POLL_S until true; the monotonic time it was; BenchError after."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return time.monotonic()
        time.sleep(POLL_S)
    raise BenchError(f"gave up after {seconds:g} s waiting for {what}")


@dataclass
class KillFigures:
    """One kill of a market process, in seconds from the kill."""

    market_id: int
    backoff_s: float  # the restart delay the orchestrator's policy gives this crash
    restarted_s: float  # kill -> /health names a new process
    ready_s: float  # kill -> /health says that process is ready
    healthz_s: float  # kill -> the market's /healthz answers 200


def market_kill_timed(*, host: Host, market_id: int, backoff_s: float) -> KillFigures:
    """SIGKILL the market's process; seconds until a new one is ready and answers."""
    old = markets_health(host=host)[market_id]["pid"]
    if old is None:
        raise BenchError(f"market {market_id} has no process to kill")

    def report() -> dict[str, Any]:
        try:
            return markets_health(host=host)[market_id]
        except (urllib.error.URLError, OSError):
            return {}

    killed = time.monotonic()
    os.kill(old, signal.SIGKILL)
    restarted = until(
        lambda: report().get("pid") not in (None, old), what="a new process", seconds=60
    )
    ready = until(
        lambda: (r := report()).get("state") == "ready" and r.get("pid") != old,
        what=f"market {market_id} ready again",
        seconds=RECOVERY_TIMEOUT_S,
    )
    answers = until(
        lambda: healthz_answers(url=host.market_url(market_id)),
        what=f"market {market_id}'s /healthz",
        seconds=RECOVERY_TIMEOUT_S,
    )
    return KillFigures(
        market_id, backoff_s, restarted - killed, ready - killed, max(ready, answers) - killed
    )


def kills_measure(*, host: Host, kills: int) -> list[KillFigures]:
    """Kill markets 2 and 1 in turn, each time once both are ready."""
    crashes = {1: 0, 2: 0}
    figures = []
    for k in range(kills):
        until(lambda: markets_ready(host=host), what="both markets ready", seconds=STARTUP_S)
        market_id = 2 - k % 2
        crashes[market_id] += 1
        backoff_s = BACKOFF_FIRST_S * 2 ** (crashes[market_id] - 1)
        figures.append(market_kill_timed(host=host, market_id=market_id, backoff_s=backoff_s))
    return figures


def kills_report(*, figures: list[KillFigures], started_s: float) -> None:
    """Print each kill's times, then their median and worst with and without the backoff."""
    print(
        f"Market process SIGKILLed, {len(figures)} times (the host's cold start: {started_s:.1f} s)"
    )
    for f in figures:
        print(
            f"  market {f.market_id}: new process {f.restarted_s:5.2f} s (backoff"
            f" {f.backoff_s:g} s), ready {f.ready_s:5.2f} s, /healthz 200 {f.healthz_s:5.2f} s"
        )
    if figures:
        both = [f.healthz_s for f in figures]
        less = [f.healthz_s - f.backoff_s for f in figures]
        print(
            f"  kill -> ready and /healthz 200: median {statistics.median(both):.2f} s,"
            f" worst {max(both):.2f} s; without the backoff: median"
            f" {statistics.median(less):.2f} s, worst {max(less):.2f} s"
        )
    print()
