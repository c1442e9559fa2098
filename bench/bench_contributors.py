"""Contributor agents on a running market: by default 1,000 NPCs, 32 booths, 20 contributors.

    python bench/bench_contributors.py                 the run of docs/performance.md
    python bench/bench_contributors.py --kill 0 --seconds 30     no failover, shorter
    python bench/bench_contributors.py --freeze        failover by silence, not by a kill

Starts `runmarket --booths 32 --walkers 1000` (embedded: zones, dispatcher hub and
sockets in one process) on a fresh database, then --contributors SDK contributors
(`zones.client.contributor`, utility policy, --capacity each) spread over --processes
processes (`zones/load/contributors.py`, which `manage.py loadtest --contributors` uses
too): the first group runs in this process, which also asks the market for its
dispatcher's figures (the socket's `stats` message) through one of them, every second,
and every POLL_FAST_S around the failover. Printed, over the steady part of the run
(from --warmup to the failover):

  * decisions dispatched and validated a second (the dispatcher's `decided` count; each
    was checked against its lease before it went to a zone), and how many the zones
    applied (the contributors' `result` messages);
  * the server's own time per decision (`server` in the `stats` answer): an answer's,
    from its message reaching the socket to its row on the zone's channel (p50, p99), and
    a request's wait in the hub before its first send (p50, p99; the pump runs every
    50 ms, so this is mostly that cadence);
  * decision latency p50/p95 from the zone's request to the answer taken (last 30 s);
  * the fallback share: requests the zones decided themselves (nobody answered in 5 s);
  * demand: requests resolved a second, and the capacity declared against it.

Failover: at --kill-at seconds the last process, holding --kill contributors, is killed
(SIGKILL: its sockets close at once) or, with --freeze, stopped (SIGSTOP: its sockets stay
open and silent, and the dispatcher drops them after 30 s without a heartbeat or an
answer). Printed: how long until the dispatcher had dropped them all (detection), how
long after that until no request was left waiting beyond the steady level
(reassignment), and the fallback share from the failover to the end.
"""

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fabric_site.settings")

from zones.load.contributors import (  # noqa: E402  (after the path above)
    Poller,
    child_argv,
    client_totals,
    contributed,
    failover,
    groups_of,
    make_contributors,
    percent,
    run_group,
)
from zones.load.contributors import window as shared_window  # noqa: E402


def window(poller: Poller, start: float, end: float) -> dict[str, Any]:
    """Rates between the samples nearest `start` and `end` (`decided_per_s` and
    `requests_per_s` are 0 for a window of no length)."""
    w = shared_window(poller.samples, start, end)
    for key in ("decided_per_s", "requests_per_s"):
        w[key] = w[key] or 0.0
    return w


async def lead(args: argparse.Namespace, url: str, market: int) -> None:
    from bench.machine import load_average

    groups = groups_of(args.contributors, args.processes)
    killed_group = groups[-1] if args.kill else None
    if killed_group is not None and killed_group[1] != args.kill:
        raise SystemExit(
            f"--kill {args.kill}: the last process holds {killed_group[1]} contributors; "
            "choose --contributors and --processes so that it holds --kill"
        )
    mine = make_contributors(url, market, groups[0][0], groups[0][1], args.capacity)
    children = [  # each runs --seconds, or until its standard input closes
        subprocess.Popen(
            child_argv(url, market, first, count, args.capacity, seconds=args.seconds),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        for first, count in groups[1:]
    ]  # fmt: skip
    t0 = time.monotonic()
    poller = Poller(mine[0])
    poller.fast_from, poller.fast_until = args.kill_at - 2, args.kill_at + 40
    running = asyncio.gather(run_group(mine, args.seconds), poller.run(t0, args.seconds - 0.5))
    kill_at = None
    if args.kill:
        await asyncio.sleep(max(0.0, args.kill_at - (time.monotonic() - t0)))
        victim = children[-1]
        print(f"load at the failover: {load_average()}", flush=True)
        victim.send_signal(signal.SIGSTOP if args.freeze else signal.SIGKILL)
        kill_at = time.monotonic() - t0
    mine_report, _ = await running
    reports = [mine_report]
    for process in children[:-1] if args.kill else children:
        out, _ = process.communicate(timeout=60)
        reports.append(json.loads(out.strip().splitlines()[-1])["report"])
    if args.kill:
        children[-1].kill()
        if args.freeze:
            children[-1].send_signal(signal.SIGCONT)
        children[-1].wait()
    end = args.kill_at if args.kill else args.seconds
    steady = window(poller, args.warmup, end - 0.5)
    s = steady["stats"]
    server = s["server"]
    capacity = args.contributors * args.capacity
    latency_s = (s["latency_avg_ms"] or 0) / 1000
    in_flight = steady["requests_per_s"] * latency_s
    print()
    print(f"steady window            {args.warmup:g} s to {end:g} s of the run")
    print(f"dispatched and validated {steady['decided_per_s']:.0f} decisions/s (target ≥ 500)")
    print(f"demand                   {steady['requests_per_s']:.0f} requests resolved/s")
    print(
        f"server time per decision answer p50 {server['answer_ms_p50']} ms, "
        f"p99 {server['answer_ms_p99']} ms (target p99 ≤ 20 ms); wait in the hub "
        f"p50 {server['queue_ms_p50']} ms, p99 {server['queue_ms_p99']} ms"
    )
    print(
        f"decision latency         p50 {s['latency_p50_ms']} ms, p95 {s['latency_p95_ms']} ms, "
        f"mean {s['latency_avg_ms']} ms (the zone's request to the answer taken)"
    )
    print(f"fallback share           {percent(steady['fallback_share'])} (target ≤ 5 %)")
    print(
        f"capacity                 {capacity} decisions held at once declared, against "
        f"{in_flight:.0f} in flight on average ({capacity / max(in_flight, 1e-9):.0f}×)"
    )
    per_contributor = [c["decisions_per_min"] / 60 for c in contributed(s)]
    print(
        f"per contributor          {min(per_contributor):.1f} to {max(per_contributor):.1f} "
        f"valid decisions/s over the last 30 s ({len(per_contributor)} contributors)"
    )
    totals = client_totals(reports)
    print(
        f"contributors' counts     {totals['requests']} requests, {totals['answered']} answered, "
        f"{totals['applied']} applied by the zones, {totals['refused']} refused"
        + (" (the failed-over process's not included)" if args.kill else "")
    )
    if kill_at is not None:
        how = "frozen (SIGSTOP)" if args.freeze else "killed (SIGKILL)"
        survivors = args.contributors - args.kill
        print(f"failover                 {args.kill} contributors {how} at {kill_at:.1f} s: "
              + failover(poller.samples, args.warmup, kill_at, survivors))  # fmt: skip
        after = window(poller, kill_at, args.seconds - 1)
        print(f"after the failover       {after['decided_per_s']:.0f} decisions/s, fallback "
              f"share {percent(after['fallback_share'])}")  # fmt: skip
    print(f"load at the end          {load_average()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--npcs", type=int, default=1000)
    parser.add_argument("--booths", type=int, default=32)
    parser.add_argument("--contributors", type=int, default=20)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--capacity", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=75.0)
    parser.add_argument("--warmup", type=float, default=15.0)
    parser.add_argument("--kill", type=int, default=5)
    parser.add_argument("--kill-at", type=float, default=45.0)
    parser.add_argument("--freeze", action="store_true")
    args = parser.parse_args()
    if not 0 <= args.kill < args.contributors or args.processes < (2 if args.kill else 1):
        parser.error("--kill needs other contributors to survive, in at least 2 processes")
    if args.kill and not args.warmup + 5 < args.kill_at < args.seconds - (35 if args.freeze else 8):
        parser.error("--kill-at must leave 5 s of steady run before and time to see the failover")
    import django

    django.setup()
    from bench.machine import machine_info
    from zones.load.server import OwnServer

    machine_info(
        run=f"{args.npcs} NPCs, {args.booths} booths, {args.contributors} contributors "
        f"in {args.processes} processes, capacity {args.capacity} each, {args.seconds:g} s"
    )
    log = Path(tempfile.mkdtemp(prefix="bench-contributors-")) / "server.log"
    server = OwnServer(log_path=log, booths=args.booths, walkers=args.npcs)
    server.start()
    print(f"market {server.market_id} at {server.url} (log {log})", flush=True)
    try:
        asyncio.run(lead(args, server.url, server.market_id))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
