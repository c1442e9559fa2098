"""Contributor agents beside a load run: SDK contributors (utility policy) in subprocesses,
and the market's dispatcher figures read through one of them.

Used by `manage.py loadtest --contributors N` and by `bench/bench_contributors.py`. One
process of contributors is

    python -m zones.load.contributors --url URL --market 1 --first 0 --count 5 \
        --capacity 64 [--seconds S] [--poll]

It runs `--count` contributors (keys KEY_PREFIX + number) until `--seconds` have passed
or its standard input closes (the harness closes it to stop it), then prints what they
counted as one JSON line `{"report": …}`. With `--poll` it also asks the market for its
dispatcher's figures (the socket's `stats` message) through its first contributor every
POLL_S and prints each answer as a line `{"stats": …}` the moment it comes, so that the
harness, which only reads the lines, spends next to no CPU on the contributors.
"""

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .observe import process_cpu_s

POLL_S = 1.0
POLL_FAST_S = 0.1
KEY_PREFIX = "load-contributor-key-"
STOP_TIMEOUT_S = 10.0
FAST_AFTER_KILL_S = 40.0  # the dispatcher's figures every POLL_FAST_S for this long
ROOT = Path(__file__).resolve().parents[2]  # where `-m zones.load.contributors` is found


# --- contributors and what they counted ------------------------------------------------------


def make_contributors(url: str, market: int, first: int, count: int, capacity: int) -> list[Any]:
    """`count` SDK contributors with the utility policy, keys numbered from `first`."""
    from zones.client.contributor import Contributor, utility_policy

    return [
        Contributor(url, market, f"{KEY_PREFIX}{first + i:04d}", capacity, utility_policy)
        for i in range(count)
    ]


def group_report(members: list[Any], errors: list[str] | None = None) -> dict[str, Any]:
    """What one group of contributors counted: requests, answers, applied, refused; the
    close codes of sockets the market closed, and the errors of those that could not run."""
    return {
        "errors": errors or [],
        "requests": sum(c.stats.requests for c in members),
        "answered": sum(c.stats.answered for c in members),
        "applied": sum(c.stats.results.get("applied", 0) for c in members),
        "refused": sum(sum(c.stats.refused.values()) for c in members),
        "closed": [c.closed for c in members if c.closed],
    }


def client_totals(groups: list[dict[str, Any]]) -> dict[str, Any]:
    """The contributors' own counts, summed over the groups that reported."""
    total: dict[str, Any] = {"requests": 0, "answered": 0, "applied": 0, "refused": 0}
    for group in groups:
        for key in total:
            total[key] += group[key]
    return total


async def run_group(
    members: list[Any], seconds: float | None, errors: list[str] | None = None
) -> dict[str, Any]:
    """Run the contributors for `seconds` (or until cancelled); what they counted. A
    contributor that cannot run (refused, no server) adds its error to `errors`."""
    errors = [] if errors is None else errors

    async def one(contributor: Any) -> None:
        try:
            await contributor.run(seconds=seconds)
        except Exception as error:  # reported with the group's counts
            errors.append(f"{type(error).__name__}: {error}")

    await asyncio.gather(*(one(c) for c in members))
    return group_report(members, errors)


# --- the dispatcher's figures ----------------------------------------------------------------


class Poller:
    """The dispatcher's figures, asked through one contributor, with when they came
    (seconds since `t0`); `on_sample` is told of each one."""

    def __init__(
        self, contributor: Any, on_sample: Callable[[dict[str, Any]], None] | None = None
    ) -> None:
        self.contributor = contributor
        self.on_sample = on_sample
        self.samples: list[tuple[float, dict[str, Any]]] = []
        self.fast_from = self.fast_until = 0.0  # seconds since t0
        self.t0 = 0.0

    async def run(self, t0: float, seconds: float | None) -> None:
        self.t0 = t0
        while seconds is None or time.monotonic() - t0 < seconds:
            before = self.contributor.server_stats
            await self.contributor.ask_stats()
            asked = time.monotonic()
            while self.contributor.server_stats is before and time.monotonic() - asked < 2.0:
                await asyncio.sleep(0.005)
            if self.contributor.server_stats is not before:
                stats = self.contributor.server_stats
                self.samples.append((time.monotonic() - t0, stats))
                if self.on_sample is not None:
                    self.on_sample(stats)
            now = time.monotonic() - t0
            fast = self.fast_from <= now <= self.fast_until
            await asyncio.sleep(POLL_FAST_S if fast else POLL_S)


Sample = tuple[float, dict[str, Any]]


def sample_at(samples: list[Sample], t: float) -> Sample:
    """The last sample taken at or before `t` (the first one if none)."""
    chosen = samples[0]
    for sample in samples:
        if sample[0] > t:
            break
        chosen = sample
    return chosen


def contributed(stats: dict[str, Any]) -> list[dict[str, Any]]:
    """The contributors of a `stats` answer, without the server's own endpoint."""
    return [c for c in stats["contributors"] if not c.get("last_resort")]


def window(samples: list[Sample], start: float, end: float) -> dict[str, Any]:
    """Decisions between the samples nearest `start` and `end`: decided (dispatched and
    validated) a second, requests resolved a second, the share the zones decided."""
    (t_a, a), (t_b, b) = sample_at(samples, start), sample_at(samples, end)
    seconds = t_b - t_a
    decided, expired = b["decided"] - a["decided"], b["expired"] - a["expired"]
    resolved = decided + expired
    return {
        "from_s": t_a,
        "to_s": t_b,
        "seconds": seconds,
        "decided": decided,
        "expired": expired,
        "decided_per_s": decided / seconds if seconds > 0 else None,
        "requests_per_s": resolved / seconds if seconds > 0 else None,
        "fallback_share": expired / resolved if resolved else None,
        "stats": b,
    }


def failover_figures(
    samples: list[Sample], since: float, kill_at: float, survivors: int
) -> dict[str, Any]:
    """Detection and reassignment of a failover at `kill_at`: seconds from it until the
    dispatcher lists at most `survivors` contributors (`detected_s`), then until no more
    requests wait than twice the steady level, the most seen from `since` to the failover
    (`reassigned_s`, after detection); None when not seen before the end."""
    detected = next(
        (t for t, s in samples if t >= kill_at and len(contributed(s)) <= survivors), None
    )
    steady = [s["waiting"] for t, s in samples if since <= t < kill_at]
    level = max(5, 2 * max(steady, default=0))
    back = None
    if detected is not None:
        back = next((t for t, s in samples if t >= detected and s["waiting"] <= level), None)
    return {
        "detected_s": None if detected is None else round(detected - kill_at, 3),
        "reassigned_s": None if back is None or detected is None else round(back - detected, 3),
        "steady_waiting_max": level // 2,
    }


def failover(samples: list[Sample], since: float, kill_at: float, survivors: int) -> str:
    """`failover_figures` in words."""
    f = failover_figures(samples, since, kill_at, survivors)
    if f["detected_s"] is None:
        return "not detected before the end of the run"
    steady_wait = f"(steady waiting at most {f['steady_waiting_max']})"
    reassigned = (
        f"{f['reassigned_s']:.2f} s after detection {steady_wait}"
        if f["reassigned_s"] is not None
        else f"still above the steady level at the end {steady_wait}"
    )
    return f"detected {f['detected_s']:.2f} s after the failover; reassigned {reassigned}"


def percent(share: float | None) -> str:
    return "–" if share is None else f"{100 * share:.2f} %"


def decision_figures(
    samples: list[Sample], start: float, end: float, declared_capacity: int
) -> dict[str, Any] | None:
    """The decision figures of a window, from the dispatcher's `stats` answers: None
    when fewer than two answers came within it."""
    inside = [s for s in samples if start <= s[0] <= end]
    if len(inside) < 2:
        return None
    w = window(samples, inside[0][0], inside[-1][0])
    s = w["stats"]
    server = s.get("server") or {}
    latency_s = (s.get("latency_avg_ms") or 0) / 1000
    in_flight = (w["requests_per_s"] or 0) * latency_s
    per_contributor = [c["decisions_per_min"] / 60 for c in contributed(s)]
    return {
        "window_s": [round(w["from_s"], 3), round(w["to_s"], 3)],
        "decided": w["decided"],
        "expired": w["expired"],
        "decided_per_s": _round(w["decided_per_s"], 1),
        "requests_per_s": _round(w["requests_per_s"], 1),
        "fallback_share": _round(w["fallback_share"], 4),
        "server_answer_ms": {
            "p50": server.get("answer_ms_p50"),
            "p99": server.get("answer_ms_p99"),
        },
        "hub_wait_ms": {"p50": server.get("queue_ms_p50"), "p99": server.get("queue_ms_p99")},
        "latency_ms": {
            "p50": s.get("latency_p50_ms"),
            "p95": s.get("latency_p95_ms"),
            "mean": s.get("latency_avg_ms"),
        },
        "capacity_declared": declared_capacity,
        "in_flight_mean": _round(in_flight, 1),
        "capacity_ratio": _round(declared_capacity / in_flight, 2) if in_flight > 0 else None,
        "contributors_connected": len(per_contributor),
        "per_contributor_per_s": (
            [_round(min(per_contributor), 1), _round(max(per_contributor), 1)]
            if per_contributor
            else None
        ),
        "refused": s.get("refused") or {},
        "banned": s.get("banned", 0),
    }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(float(value), digits)


# --- processes of contributors -------------------------------------------------------------


def groups_of(count: int, processes: int, last: int = 0) -> list[tuple[int, int]]:
    """(first key number, contributors) of each process: `count` shared out as evenly as
    ceil(count / processes) a process allows; with `last`, the last process holds exactly
    `last` of them (the ones a failover kills) and the others share the rest."""
    if last:
        return [*groups_of(count - last, processes - 1), (count - last, last)]
    per = -(-count // processes)
    groups, first = [], 0
    while first < count:
        groups.append((first, min(per, count - first)))
        first += per
    return groups


def child_argv(
    url: str,
    market: int,
    first: int,
    count: int,
    capacity: int,
    seconds: float | None = None,
    poll: bool = False,
) -> list[str]:
    """The command line of one process of contributors."""
    argv = [sys.executable, "-m", "zones.load.contributors", "--url", url]
    argv += ["--market", str(market), "--first", str(first), "--count", str(count)]
    argv += ["--capacity", str(capacity)]
    if seconds is not None:
        argv += ["--seconds", str(seconds)]
    return argv + (["--poll"] if poll else [])


@dataclass(frozen=True)
class FleetSettings:
    """Contributors beside a load run: how many, in how many processes, each declaring
    `capacity` decisions held at once; `log_path` takes the processes' error output."""

    count: int
    processes: int
    capacity: int = 64
    log_path: Path | None = None
    kill: int = 0  # contributors of the last process, killed (SIGKILL) ...
    kill_at_s: float = 0.0  # ... this long after the steady phase began

    def describe(self) -> dict[str, Any]:
        return {
            "contributors": self.count,
            "processes": self.processes,
            "capacity_each": self.capacity,
            "policy": "utility",
            "kill": self.kill,
            "kill_at_s": self.kill_at_s if self.kill else None,
        }


class ContributorFleet:
    """Processes of contributors beside a load run. The first also polls the dispatcher's
    figures; this side only reads their lines (when each came, by `time.monotonic()`)
    and their CPU time."""

    def __init__(self, url: str, market: int, settings: FleetSettings) -> None:
        self.url, self.market, self.settings = url, market, settings
        self.processes: list[asyncio.subprocess.Process] = []
        self.readers: list[asyncio.Task[None]] = []
        self.samples: list[Sample] = []  # (monotonic time, the dispatcher's `stats` answer)
        self.reports: list[dict[str, Any]] = []
        self.cpu_seen: dict[int, float] = {}
        self.killed_at: float | None = None  # time.monotonic() of the failover
        self._log: Any = None

    async def start(self) -> None:
        s = self.settings
        if s.log_path is not None:
            self._log = s.log_path.open("ab")
        err = self._log if self._log is not None else asyncio.subprocess.DEVNULL
        for i, (first, count) in enumerate(groups_of(s.count, s.processes, s.kill)):
            argv = child_argv(self.url, self.market, first, count, s.capacity, poll=i == 0)
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                cwd=ROOT,
                start_new_session=True,
            )
            self.processes.append(process)
            self.readers.append(asyncio.create_task(self._read(process)))

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        async for line in process.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if "stats" in message:
                self.samples.append((time.monotonic(), message["stats"]))
            elif "report" in message:
                self.reports.append(message["report"])

    async def kill(self) -> None:
        """Kill the last process (SIGKILL: its sockets close at once), and have the
        dispatcher's figures read every POLL_FAST_S for FAST_AFTER_KILL_S."""
        poller = self.processes[0].stdin
        if poller is not None:
            poller.write(f"fast {FAST_AFTER_KILL_S}\n".encode())
            with contextlib.suppress(ConnectionError):
                await poller.drain()
        await asyncio.sleep(POLL_S)  # the fast polling has begun before the kill
        with contextlib.suppress(ProcessLookupError):
            self.processes[-1].kill()
        self.killed_at = time.monotonic()

    def cpu_s(self) -> float:
        """CPU seconds of every process of contributors so far (a process that ended keeps
        its last reading)."""
        for process in self.processes:
            with contextlib.suppress(OSError, ValueError, IndexError):
                self.cpu_seen[process.pid] = process_cpu_s(process.pid)
        return sum(self.cpu_seen.values())

    async def stop(self) -> None:
        """Close their standard input (each prints what it counted and ends), then wait;
        a process that does not end within STOP_TIMEOUT_S is killed."""
        for process in self.processes:
            if process.stdin is not None:
                process.stdin.close()
        for process in self.processes:
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        await asyncio.gather(*self.readers, return_exceptions=True)
        if self._log is not None:
            self._log.close()

    def outcome(self, t0: float) -> dict[str, Any]:
        """Settings, the contributors' own counts (a killed process's not included: it
        reports nothing), when the failover was (seconds since `t0`), and what kept any
        contributor from running."""
        errors = [e for r in self.reports for e in r.get("errors", [])]
        return {
            **self.settings.describe(),
            "processes_reported": len(self.reports),
            "counts": client_totals(self.reports),
            "closed_by_market": [c for r in self.reports for c in r.get("closed", [])],
            "errors": errors[:5],
            "killed_at_s": None if self.killed_at is None else round(self.killed_at - t0, 3),
        }


async def _stdin_closed(poller: "Poller | None") -> None:
    """Returns when standard input reaches its end (the harness stopped the group); a line
    `fast S` has the poller read every POLL_FAST_S for the next S seconds."""
    while line := await asyncio.to_thread(sys.stdin.readline):
        word, _, value = line.partition(" ")
        if word == "fast" and poller is not None:
            with contextlib.suppress(ValueError):
                poller.fast_from = time.monotonic() - poller.t0
                poller.fast_until = poller.fast_from + float(value)


async def child(args: argparse.Namespace) -> dict[str, Any]:
    members = make_contributors(args.url, args.market, args.first, args.count, args.capacity)

    def emit(stats: dict[str, Any]) -> None:
        print(json.dumps({"stats": stats}), flush=True)

    t0 = time.monotonic()
    errors: list[str] = []
    group = asyncio.ensure_future(run_group(members, args.seconds, errors))
    poller = Poller(members[0], emit) if args.poll else None
    side = [asyncio.ensure_future(_stdin_closed(poller))]
    if poller is not None:
        side.append(asyncio.ensure_future(poller.run(t0, args.seconds)))
    await asyncio.wait([group, side[0]], return_when=asyncio.FIRST_COMPLETED)
    if group.done():
        report: dict[str, Any] = group.result()
    else:  # stopped from outside: what they counted until now
        group.cancel()
        report = group_report(members, errors)
    for task in side:
        task.cancel()
    await asyncio.gather(group, *side, return_exceptions=True)
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="One process of load-test contributors.")
    parser.add_argument("--url", required=True)
    parser.add_argument("--market", type=int, required=True)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--capacity", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--poll", action="store_true")
    args = parser.parse_args(argv)
    if args.count < 1 or args.capacity < 1:
        parser.error("--count and --capacity must be at least 1")
    try:
        report = asyncio.run(child(args))
    except KeyboardInterrupt:
        return
    print(json.dumps({"report": report}), flush=True)


if __name__ == "__main__":
    main()
