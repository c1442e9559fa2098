"""CPU per zone-tick of persistence: full snapshots (the old path) against the input log.

    python bench/bench_zone_persist.py                 measure
    python bench/bench_zone_persist.py --ticks 1000    a longer measurement

Two zones, each with the default ZoneParams (ZONE_CAPACITY = 1,800 slots):

* idle: no entities and no inputs, only the tick's wall time;
* moving: --visitors visitors (15) spawned at tick 1, each sent a velocity
  command every tick, as a gateway does for visitors who keep moving.

Each zone is stepped for --ticks ticks first (the step's CPU is timed here);
then the same states and StepInputs are persisted, in alternating runs, both
ways, into a fresh directory under --dir each run:

* old: zones/worker.py `_persist` before the input log: a full snapshot
  (SnapshotStore.write: serialise every slot, write, rename, list, delete the
  oldest) whenever the tick applied inputs from outside or sent a message, and
  at least once a second;
* new: one input log record per tick (InputLog.append: encode, one os.write on
  an O_APPEND descriptor), and every SNAPSHOT_EVERY_TICKS a new segment, a
  snapshot and the pruning of covered segments, in the worker's order.

CPU is the calling thread's user + system time (time.thread_time_ns) over all
the run's ticks, divided by the ticks: the snapshot every 5 s is averaged in.
Each figure is the median of --runs runs; the machine may be shared.
"""

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

import argparse  # noqa: E402
import gc  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import machine_info  # noqa: E402
from zones.core.constants import SIM_TICK_HZ, TICK_MS  # noqa: E402
from zones.core.inputlog import LogRecord  # noqa: E402
from zones.core.ranges import floor_ranges  # noqa: E402
from zones.core.state import ZoneParams, ZoneState  # noqa: E402
from zones.core.step import StepInputs, step  # noqa: E402
from zones.core.wire import COMMAND_DTYPE, SPAWN_DTYPE, CommandKind, RowFlag  # noqa: E402
from zones.inputlog import InputLog  # noqa: E402
from zones.snapshots import SnapshotStore  # noqa: E402
from zones.worker import SNAPSHOT_EVERY_TICKS  # noqa: E402

ZONE = 0
T0 = 1_800_000_000_000
OLD_SNAPSHOT_EVERY_TICKS = SIM_TICK_HZ  # the old path's "at least once a second"
TARGET_IDLE_MS = 0.1  # step + persistence of an idle zone, per tick


@dataclass
class Ticked:
    """One zone's run: the state after each tick, the inputs it stepped on, what it sent."""

    name: str
    states: list[ZoneState]
    inputs: list[StepInputs]
    sent: list[bool]
    step_ms: float  # CPU of the step alone, per tick


def visitor_inputs(t: int, visitors: int) -> StepInputs:
    """Tick t's inputs: the visitors' spawn at tick 0, then a velocity for each every tick."""
    ids = np.arange(1, visitors + 1, dtype=np.uint64) + np.uint64(1 << 41)
    spawns = np.zeros(visitors if t == 0 else 0, SPAWN_DTYPE)
    if t == 0:
        spawns["id"], spawns["kind"] = ids, RowFlag.VISITOR_ROOT
        spawns["pos"] = np.column_stack([np.full(visitors, 10.0), np.ones(visitors), ids % 20])
    commands = np.zeros(visitors, COMMAND_DTYPE)
    angle = t / 10 + np.arange(visitors)
    commands["id"], commands["kind"] = ids, CommandKind.VELOCITY
    commands["vec"] = np.column_stack([np.cos(angle), np.zeros(visitors), np.sin(angle)])
    return StepInputs(now_ms=T0 + TICK_MS * t, commands=commands, spawns=spawns)


def run_zone(name: str, ticks: int, make_inputs: Callable[[int], StepInputs]) -> Ticked:
    params = ZoneParams(zone=ZONE)
    state = ZoneState.empty(ZONE, floor_ranges(3))
    run = Ticked(name, [], [], [], 0.0)
    cpu = 0
    for t in range(ticks):
        inputs = make_inputs(t)
        started = time.thread_time_ns()
        state, out = step(state, inputs, params)
        cpu += time.thread_time_ns() - started
        run.states.append(state)
        run.inputs.append(inputs)
        run.sent.append(bool(out.messages))
    run.step_ms = cpu / ticks / 1e6
    return run


def old_path(run: Ticked, root: Path) -> tuple[int, int]:
    """(CPU ns, snapshots written) for the full-snapshot path over the run."""
    store = SnapshotStore(root, ZONE)
    last = 0
    started = time.thread_time_ns()
    for state, inputs, sent in zip(run.states, run.inputs, run.sent, strict=True):
        outside = bool(len(inputs.commands) or len(inputs.spawns) or len(inputs.despawns))
        if sent or outside or state.tick - last >= OLD_SNAPSHOT_EVERY_TICKS:
            store.write(state)
            last = state.tick
    cpu = time.thread_time_ns() - started
    store.close()
    return cpu, store.written


def new_path(run: Ticked, root: Path) -> tuple[int, int]:
    """(CPU ns, bytes logged) for the input log with a snapshot every SNAPSHOT_EVERY_TICKS."""
    store = SnapshotStore(root, ZONE)
    log = InputLog(store.dir, ZONE)
    log.start(0, b"")
    last = 0
    started = time.thread_time_ns()
    for state, inputs in zip(run.states, run.inputs, strict=True):
        log.append(LogRecord(tick=state.tick, inputs=inputs))
        if state.tick - last >= SNAPSHOT_EVERY_TICKS:
            log.start(state.tick, b"")
            store.write(state)
            last = state.tick
            log.prune(int(store.revisions()[0].stem))
    cpu = time.thread_time_ns() - started
    log.close()
    store.close()
    return cpu, log.bytes_written


def measure(run: Ticked, runs: int, base: Path) -> None:
    ticks = len(run.states)
    old_ms, new_ms = [], []
    for i in range(runs):
        paths = [(old_path, old_ms), (new_path, new_ms)]
        for persist, into in paths if i % 2 else reversed(paths):
            root = Path(tempfile.mkdtemp(dir=base))
            gc.collect()
            cpu, extra = persist(run, root)
            into.append(cpu / ticks / 1e6)
            shutil.rmtree(root)
            if persist is old_path:
                snapshots = extra
            else:
                logged = extra
    old, new = statistics.median(old_ms), statistics.median(new_ms)
    print(f"{run.name}: {ticks} ticks, median of {runs} runs, CPU per zone-tick")
    print(f"  step                  {run.step_ms:.4f} ms")
    print(f"  old full snapshots    {old:.4f} ms  ({snapshots} snapshots written)")
    print(
        f"  new input log         {new:.4f} ms  ({logged / ticks:.0f} bytes logged a tick,"
        f" a snapshot every {SNAPSHOT_EVERY_TICKS} ticks)"
    )
    print(f"  new / old             {new / old:.3f}  ({old / new:.1f}x less CPU)")
    total = run.step_ms + new
    print(f"  step + new persist    {total:.4f} ms")
    if run.name.startswith("idle"):
        verdict = "met" if total <= TARGET_IDLE_MS else "not met"
        print(f"  target <= {TARGET_IDLE_MS} ms a tick for an idle zone, all in: {verdict}")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ticks", type=int, default=400, help="ticks per run (>= 1)")
    parser.add_argument("--runs", type=int, default=7, help="runs per path; medians are quoted")
    parser.add_argument("--visitors", type=int, default=15, help="moving visitors in one zone")
    parser.add_argument("--dir", default=None, help="where to write (default: the temp dir)")
    args = parser.parse_args()
    if args.ticks < 1 or args.runs < 1 or args.visitors < 1:
        parser.error("--ticks, --runs and --visitors must be at least 1")
    base = Path(args.dir or tempfile.gettempdir())
    machine_info(numpy=np.__version__, disk=f"writes under {base}")
    idle = run_zone("idle zone", args.ticks, lambda t: StepInputs(now_ms=T0 + TICK_MS * t))
    moving = run_zone(
        f"zone with {args.visitors} visitors moving",
        args.ticks,
        lambda t: visitor_inputs(t, args.visitors),
    )
    for run in (idle, moving):
        measure(run, args.runs, base)


if __name__ == "__main__":
    main()
