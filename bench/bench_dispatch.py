"""The server's work per NPC decision in the contributor dispatcher, without sockets.

    python bench/bench_dispatch.py                   1,000 NPCs, 20 contributors, 20 s simulated
    python bench/bench_dispatch.py --npcs 5000       more requests per round

Simulated time, in rounds of 50 ms: each NPC's decision is due every 3 s (its requests
are spread over the rounds), the zone's observations are made by `observations` from a
real zone state of --npcs NPCs over the default market with its booth items, and
carried as JSON (encoded by the zone, decoded by the hub, as on the channel layer);
the `Dispatcher` assigns them to --contributors contributors of capacity 64, each
answering everything it was given in the same round with the utility policy of the
SDK, its decisions JSON-encoded and decoded as on the socket. Timed: per round, the
hub's share (decode, offer, assign, encode the requests, decode and check the answers)
and the zone's share (observations and their encoding), each per decision; the
contributors' policy time is printed apart. The figures: decisions taken per second of
the hub's time, server overhead per decision (p50, p99 over rounds), and the share of
requests that expired unanswered (the fallback share).

    python bench/bench_dispatch.py --seconds 45 --kill 5

kills 5 contributors at --kill-at (default a third of the run): they stop answering and
sending heartbeats. Printed: when the dispatcher dropped each (detection, from the kill),
and how long after the kill the requests they held went to others (reassignment), with
the fallback share of the requests issued after the kill.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from zones.client.contributor import utility_policy  # noqa: E402
from zones.core.constants import MARKET_SIZE_M, TICK_MS  # noqa: E402
from zones.core.dispatch import Dispatcher, Refusal  # noqa: E402
from zones.core.items import booth_items  # noqa: E402
from zones.core.observe import observations  # noqa: E402
from zones.core.ranges import floor_ranges  # noqa: E402
from zones.core.state import ZoneParams, ZoneState  # noqa: E402
from zones.core.step import StepInputs, step  # noqa: E402
from zones.core.wire import SPAWN_DTYPE, RowFlag  # noqa: E402

T0 = 1_800_000_000_000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--npcs", type=int, default=1000)
    parser.add_argument("--contributors", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--kill", type=int, default=0, help="contributors killed mid-run")
    parser.add_argument("--kill-at", type=float, default=None)
    args = parser.parse_args(argv)

    ranges = floor_ranges(1)
    lo, hi = np.zeros(3, np.float32), np.array(MARKET_SIZE_M, np.float32)
    capacity = max(1800, args.npcs)
    items = booth_items(ranges, 0, lo, hi)
    params = ZoneParams(zone=0, capacity=capacity, spawn_cap=capacity, items=items)
    rows = np.zeros(args.npcs, SPAWN_DTYPE)
    rows["id"] = np.arange(1, args.npcs + 1)
    rows["pos"] = np.random.default_rng(1).uniform((1, 1, 1), (127, 1, 127), (args.npcs, 3))
    rows["kind"] = RowFlag.NPC
    state = ZoneState.empty(0, ranges, params.capacity)
    state, _ = step(state, StepInputs(now_ms=T0, spawns=rows), params)

    d = Dispatcher()
    names = [f"c{i}" for i in range(args.contributors)]
    for i, name in enumerate(names):
        d.join(name, f"key-{i}", 64, now=0.0)
        d.contributors[name].valid.extend([0.0] * 32)  # a measured record, as after warm-up
    rounds = int(args.seconds * 1000 / TICK_MS)
    every = 3000 // TICK_MS
    lease = np.zeros(args.npcs + 1, np.int64)
    hub_ns: list[float] = []
    zone_ns: list[float] = []
    policy_s = 0.0
    offered = taken = refused = 0
    kill_at = args.seconds / 3 if args.kill_at is None else args.kill_at
    dead: set[str] = set()
    stranded: dict[tuple[int, int], float | None] = {}  # held by the dead at the kill → moved
    detected: dict[str, float] = {}
    offered_after = expired_at_kill = 0
    for r in range(rounds):
        now = r * TICK_MS / 1000
        due = np.arange(1 + r % every, args.npcs + 1, every, dtype=np.uint64)
        lease[due.astype(np.int64)] += 1
        state.lease[state.slots_of(due)] = lease[due.astype(np.int64)]
        started = time.perf_counter_ns()
        wire = json.dumps({"type": "npc.requests", "zone": 0, "results": [],
                           "observations": observations(state, params, due)})  # fmt: skip
        zone_time = time.perf_counter_ns() - started
        started = time.perf_counter_ns()
        message = json.loads(wire)
        d.offer(message["zone"], message["observations"], now)
        offered += len(message["observations"])
        if dead:
            offered_after += len(message["observations"])  # issued after the kill
        assigned = d.assign(now)
        if args.kill and not dead and now >= kill_at:  # right after they were given work
            dead = set(names[: args.kill])
            expired_at_kill = d.expired
            for name in dead:
                stranded.update((key, None) for key in d.contributors[name].held)
        for name in dead:
            if name not in d.contributors and name not in detected:
                detected[name] = now - kill_at
        for key, moved in stranded.items():
            request = d.requests.get(key)
            gone = request is None or request.holder not in dead
            if moved is None and gone:
                stranded[key] = now - kill_at
        outgoing = {n: json.dumps({"type": "requests", "requests": [q.observation for q in qs]})
                    for n, qs in assigned.items()}  # fmt: skip
        hub_time = time.perf_counter_ns() - started
        answers = {}
        t = time.perf_counter()
        for name, text in outgoing.items():
            if name in dead:
                continue
            requests = json.loads(text)["requests"]
            answers[name] = json.dumps({"type": "decisions",
                                        "decisions": [utility_policy(o) for o in requests]})  # fmt: skip
        policy_s += time.perf_counter() - t
        started = time.perf_counter_ns()
        for name, text in answers.items():
            for obj in json.loads(text)["decisions"]:
                result = d.answer(name, obj, now)
                if isinstance(result, Refusal):
                    refused += 1
                else:
                    taken += 1
        hub_time += time.perf_counter_ns() - started
        n = max(len(due), 1)
        hub_ns.append(hub_time / n)
        zone_ns.append(zone_time / n)
        for name in names:
            if name not in dead:
                d.heartbeat(name, now)
    d.assign(rounds * TICK_MS / 1000 + 10)
    hub = np.array(hub_ns) / 1e6
    zone = np.array(zone_ns) / 1e6
    print(f"{args.npcs} NPCs, {args.contributors} contributors, {rounds} rounds of {TICK_MS} ms")
    print(f"requests {offered}, decisions taken {taken}, refused {refused}, expired {d.expired}")
    print(f"fallback share {d.expired / max(offered, 1):.3%}")
    print(f"hub per decision   p50 {np.median(hub):.3f} ms  p99 {np.percentile(hub, 99):.3f} ms")
    print(f"zone per decision  p50 {np.median(zone):.3f} ms  p99 {np.percentile(zone, 99):.3f} ms")
    per_decision = float(np.mean(hub + zone))
    print(f"decisions per second of one core (hub + zone) {1 / (per_decision / 1000):,.0f}")
    print(f"contributor policy per decision {1000 * policy_s / max(taken, 1):.3f} ms")
    if dead:
        print(f"killed {len(dead)} contributors at {kill_at:.1f} s, holding {len(stranded)}")
        times = sorted(detected.values())
        print(f"detected after {times[0]:.2f}-{times[-1]:.2f} s" if times else "never detected")
        moved = [m for m in stranded.values() if m is not None]
        if moved:
            print(f"their requests with others after at most {max(moved):.2f} s")
        expired_after = d.expired - expired_at_kill
        print(f"fallback share after the kill {expired_after / max(offered_after, 1):.3%}")


if __name__ == "__main__":
    main()
