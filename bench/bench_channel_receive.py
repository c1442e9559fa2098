"""A zone worker's receiving: channels-redis's receive per channel beside `receive_many`.

    python bench/bench_channel_receive.py                  8 zones, 20 ticks/s, 3 repeats
    python bench/bench_channel_receive.py --zones 16 --per-zone 2 --seconds 10

A worker hosts `--zones` zones and receives on each zone's channel. Every 50 ms (a tick)
a sender process puts `--per-zone` messages on every zone's channel, each the size of a
zone's inputs from one web process (`--bytes` of payload), spread over `--spread` ms as
web processes and neighbouring workers send them. The receiver, a process of its own,
files each message as a zone worker does (a dict append) in one of two ways:

  * baseline: one task per zone awaiting channels-redis's `receive` (four Redis commands a
    message), the zone worker's receiving until 2026-12;
  * many: one task awaiting `FabricRedisChannelLayer.receive_many` over every zone's channel
    (one waiting command and a script a burst; fabric_site/redis_layer.py).

The receiver measures its own CPU (user + system, os.times) over --seconds after a
warm-up and counts the messages it filed; printed per way: µs of CPU per message, cores,
and messages/s received against the rate sent; then the ratio, baseline over many. The
two ways alternate from one repeat to the next on a fresh Redis database prefix, against
the Redis of REDIS_URL (default redis://127.0.0.1:6379/0).
"""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: the repository root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import uvloop

from bench.machine import machine_info
from bench.processes import BenchError

WAYS = ("baseline", "many")
TICK_S = 0.05


def layer_for(redis_url: str, prefix: str) -> Any:
    from fabric_site.redis_layer import FabricRedisChannelLayer

    return FabricRedisChannelLayer(
        hosts=[{"address": redis_url, "socket_timeout": 30}], prefix=prefix, capacity=2000
    )


def channels(zones: int) -> list[str]:
    return [f"fabric.m1.zone.{z}" for z in range(zones)]


async def receive(way: str, args: argparse.Namespace) -> None:
    """Receive in `way`, print this process's CPU per message filed as JSON, and exit."""
    layer = layer_for(args.redis_url, args.prefix)
    names = channels(args.zones)
    inboxes: list[list[dict[str, Any]]] = [[] for _ in names]

    async def one(index: int, name: str) -> None:
        while True:
            inboxes[index].append(await layer.receive(name))

    async def many() -> None:
        while True:
            for index, message in await layer.receive_many(names):
                inboxes[index].append(message)

    receivers = [one(i, name) for i, name in enumerate(names)] if way == "baseline" else [many()]
    tasks = [asyncio.create_task(receiver) for receiver in receivers]
    print("ready", flush=True)
    await asyncio.sleep(args.warmup)
    filed0 = sum(len(box) for box in inboxes)
    cpu0, wall0 = os.times(), time.monotonic()
    await asyncio.sleep(args.seconds)
    cpu1, wall1 = os.times(), time.monotonic()
    assert not any(task.done() for task in tasks), "a receiver ended"
    filed = sum(len(box) for box in inboxes) - filed0
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    figures = {
        "way": way,
        "messages": filed,
        "us_per_message": cpu / filed * 1e6 if filed else None,
        "cores": cpu / (wall1 - wall0),
        "messages_per_s": filed / (wall1 - wall0),
    }
    print(json.dumps(figures), flush=True)
    os._exit(0)  # the receiving tasks wait in Redis: nothing of them needs unwinding


async def send(args: argparse.Namespace, seconds: float) -> None:
    """Every tick, --per-zone messages to every zone's channel, spread over --spread ms."""
    layer = layer_for(args.redis_url, args.prefix)
    names = channels(args.zones)
    payload = os.urandom(args.bytes)
    sends = [(name, k) for k in range(args.per_zone) for name in names]
    gap = args.spread / 1000 / max(1, len(sends))
    end = time.monotonic() + seconds
    tick = time.monotonic()
    while tick < end:
        for name, k in sends:
            await layer.send(name, {"type": "zone.inputs", "k": k, "commands": payload})
            if gap:
                await asyncio.sleep(gap)
        tick += TICK_S
        await asyncio.sleep(max(0.0, tick - time.monotonic()))
    await layer.close_pools()


def one_run(way: str, args: argparse.Namespace) -> dict[str, Any]:
    prefix = f"bench{uuid.uuid4().hex[:8]}:"
    script = str(Path(__file__).resolve())
    common = ["--zones", str(args.zones), "--per-zone", str(args.per_zone)]
    common += ["--bytes", str(args.bytes), "--spread", str(args.spread)]
    common += ["--redis-url", args.redis_url, "--prefix", prefix]
    common += ["--warmup", str(args.warmup), "--seconds", str(args.seconds)]
    receiver = subprocess.Popen(
        [sys.executable, script, "--receiver", way, *common], stdout=subprocess.PIPE, text=True
    )
    try:
        assert receiver.stdout is not None
        if receiver.stdout.readline().strip() != "ready":
            raise BenchError(f"the {way} receiver did not start (exit {receiver.poll()})")
        args.prefix = prefix
        uvloop.run(send(args, args.warmup + args.seconds + 0.5))
        out, _ = receiver.communicate(timeout=60)
    finally:
        receiver.kill()
    if receiver.returncode != 0:
        raise BenchError(f"the {way} receiver failed (exit {receiver.returncode})")
    return dict(json.loads(out.strip().splitlines()[-1]))


def bench(args: argparse.Namespace) -> None:
    rate = args.zones * args.per_zone / TICK_S
    machine_info(
        zones=f"{args.zones} zones, {args.per_zone} messages a zone a tick ({rate:,.0f}/s)",
        message=f"{args.bytes} bytes of payload, a tick's sends spread over {args.spread:g} ms",
        window=f"{args.warmup:g} s warm-up, {args.seconds:g} s measured, {args.repeats} repeats",
        redis=args.redis_url,
    )
    runs: dict[str, list[dict[str, Any]]] = {way: [] for way in WAYS}
    for repeat in range(args.repeats):
        for way in WAYS if repeat % 2 == 0 else WAYS[::-1]:
            figures = one_run(way, args)
            runs[way].append(figures)
            print(
                f"repeat {repeat + 1} {way:<8}  {figures['us_per_message']:7.1f} µs/message"
                f"  {figures['cores']:.3f} cores  {figures['messages_per_s']:7,.0f} messages/s",
                flush=True,
            )
    print()
    medians = {}
    for way in WAYS:
        medians[way] = statistics.median(r["us_per_message"] for r in runs[way])
        cores = statistics.median(r["cores"] for r in runs[way])
        print(f"{way:<8}  median {medians[way]:7.1f} µs/message  {cores:.3f} cores")
    print(f"baseline / many: {medians['baseline'] / medians['many']:.2f}×")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--zones", type=int, default=8)
    parser.add_argument("--per-zone", type=int, default=1, help="messages a zone a tick")
    parser.add_argument("--bytes", type=int, default=600, help="payload bytes a message")
    parser.add_argument("--spread", type=float, default=10.0, help="ms a tick's sends take")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    )
    parser.add_argument("--prefix", default="bench:", help=argparse.SUPPRESS)
    parser.add_argument("--receiver", choices=WAYS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver:
        uvloop.run(receive(args.receiver, args))
    try:
        bench(args)
    except BenchError as error:
        sys.exit(f"bench_channel_receive: {error}")


if __name__ == "__main__":
    main()
