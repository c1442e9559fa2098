"""Latency of ReBAC checks over 1,000,000 tuples, in memory and from SQLite.

    python bench/bench_rebac.py                  both paths, every tuple in SQLite too
    python bench/bench_rebac.py --db-tuples 0    in memory only

The market is synthetic (fixed seed): 10 markets × 100 booths × 10 namespaces, 100,000
users, 5,000 groups (some nested), booth visitors, namespace readers and writers, and
440,000 chunks in the namespaces. Half of the checks follow a path that grants (a namespace
reader, a group member, a visitor of the booth a namespace names, a writer, the booth's
creator, the market's operator); the other half ask for a random user and are mostly
denied. The longest paths are chunk → namespace → booth → market and user → group → group →
booth#visitor → namespace#reader. The baseline is a hosted SpiceDB's p95 of 5.8 ms.

The SQLite run stores the tuples with bulk_create in a fresh database under a temporary
folder, with Django's debugging off, and asks through rebac_graph(), as rebac_check does.
"""

import argparse
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import machine_info  # noqa: E402
from market.rebac.engine import Graph, TupleIndex  # noqa: E402
from market.rebac.market_model import market_model  # noqa: E402

SEED = 20261121
MARKETS, BOOTHS_PER_MARKET, NAMESPACES_PER_BOOTH = 10, 100, 10
USERS, GROUPS, NESTED_GROUPS = 100_000, 5_000, 1_000
CHUNKS = 400_000
BASELINE_P95_MS = 5.8


class SyntheticMarket:
    """The tuples, and for each chunk the users some path grants it to."""

    def __init__(self, rng: random.Random) -> None:
        self.tuples: list[tuple[str, str, str]] = []
        self.granted_paths: dict[str, list[str]] = {}
        add = self.tuples.append
        booths = [f"booth:{i}" for i in range(MARKETS * BOOTHS_PER_MARKET)]
        operators, creators, visitors, members = {}, {}, {}, {}
        for g in range(GROUPS):
            members[g] = rng.sample(range(USERS), 20)
            add_all(add, f"group:{g}", "member", [f"user:{u}" for u in members[g]])
        for g in range(NESTED_GROUPS):
            inner = rng.randrange(GROUPS)
            add((f"group:{g}", "member", f"group:{inner}#member"))
            members[g] = members[g] + members[inner]
        for m in range(MARKETS):
            operators[m] = [f"user:{u}" for u in rng.sample(range(USERS), 3)]
            add_all(add, f"market:{m}", "operator", operators[m])
        for b, booth in enumerate(booths):
            market = b // BOOTHS_PER_MARKET
            creators[b] = f"user:{rng.randrange(USERS)}"
            groups = rng.sample(range(GROUPS), 2)
            visitors[b] = [f"user:{u}" for u in rng.sample(range(USERS), 150)]
            add((booth, "market", f"market:{market}"))
            add((booth, "creator", creators[b]))
            add_all(add, booth, "visitor", visitors[b] + [f"group:{g}#member" for g in groups])
            visitors[b] += [f"user:{u}" for g in groups for u in members[g]]
            if b % 100 == 0:
                add((booth, "visitor", "user:*"))
        namespaces = []
        for b, booth in enumerate(booths):
            for n in range(NAMESPACES_PER_BOOTH):
                namespace = f"namespace:{b * NAMESPACES_PER_BOOTH + n}"
                readers = [f"user:{u}" for u in rng.sample(range(USERS), 25)]
                writers = [f"user:{u}" for u in rng.sample(range(USERS), 2)]
                groups = rng.sample(range(GROUPS), 3)
                seen_by = rng.randrange(len(booths))
                add((namespace, "booth", booth))
                add_all(add, namespace, "reader", readers + [f"group:{g}#member" for g in groups])
                add((namespace, "reader", f"booth:{seen_by}#visitor"))
                add_all(add, namespace, "writer", writers)
                if rng.random() < 0.005:
                    add((namespace, "reader", "user:*"))
                paths = readers + writers + [creators[b]] + operators[b // BOOTHS_PER_MARKET]
                paths += [f"user:{u}" for g in groups for u in members[g][:3]]
                paths += rng.sample(visitors[seen_by], 3)
                namespaces.append((namespace, paths))
        for c in range(CHUNKS):
            chunk = f"chunk:{c:064x}"
            held = rng.sample(namespaces, 2 if rng.random() < 0.1 else 1)
            for namespace, _ in held:
                add((chunk, "namespace", namespace))
            self.granted_paths[chunk] = [user for _, paths in held for user in paths]
        self.chunks = list(self.granted_paths)

    def questions(self, rng: random.Random, count: int) -> list[tuple[str, str, str]]:
        """(object, relation, user): half along a granting path, half at random."""
        asked = []
        for i in range(count):
            chunk = rng.choice(self.chunks)
            relation = "can_write" if rng.random() < 0.2 else "can_read"
            if i % 2:
                user = rng.choice(self.granted_paths[chunk])
            else:
                user = f"user:{rng.randrange(USERS)}"
            asked.append((chunk, relation, user))
        return asked


def add_all(add, object: str, relation: str, users: list[str]) -> None:
    for user in users:
        add((object, relation, user))


def latencies(graph: Graph, questions: list[tuple[str, str, str]]) -> tuple[list[float], int]:
    """Milliseconds per check, and how many were granted."""
    seconds, granted = [], 0
    for object, relation, user in questions:
        start = time.perf_counter()
        answer = graph.check(object, relation, user)
        seconds.append((time.perf_counter() - start) * 1e3)
        granted += answer
    return seconds, granted


def report(name: str, milliseconds: list[float], granted: int) -> None:
    ordered = sorted(milliseconds)
    p50, p95, p99 = (ordered[int(q * (len(ordered) - 1))] for q in (0.50, 0.95, 0.99))
    print(
        f"{name:<34} {len(ordered):>6,} checks ({granted / len(ordered):4.0%} granted)"
        f"  p50 {p50:6.3f} ms  p95 {p95:6.3f} ms  p99 {p99:6.3f} ms  max {ordered[-1]:6.2f} ms"
        f"  mean {statistics.fmean(ordered):6.3f} ms"
    )
    print(
        f"{'':<34} vs hosted SpiceDB p95 {BASELINE_P95_MS} ms: p95 {BASELINE_P95_MS / p95:5.1f}x"
        f" faster, p99 {BASELINE_P95_MS / p99:5.1f}x faster; target p99 <= 1 ms:"
        f" {'met' if p99 <= 1.0 else 'NOT met'}"
    )


def in_memory(market: SyntheticMarket, questions: list[tuple[str, str, str]]) -> None:
    start = time.perf_counter()
    index = TupleIndex()
    for object, relation, user in market.tuples:
        index.add(object, relation, user)
    built = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"in-memory index: {len(index):,} tuples in {built:.1f} s (process peak RSS {rss:,.0f} MiB)"
    )
    graph = Graph(market_model(), index)
    latencies(graph, questions[:2_000])  # warm-up, untimed
    report("in memory (TupleIndex)", *latencies(graph, questions))
    users = [user for _, _, user in questions[1:400:2]]
    seconds = []
    for user in users:
        start = time.perf_counter()
        graph.list_objects(user, "chunk", "can_read")
        seconds.append((time.perf_counter() - start) * 1e3)
    seconds.sort()
    print(
        f"list_objects(chunk, can_read) for {len(users)} users with grants: "
        f"p50 {seconds[len(seconds) // 2]:.1f} ms, p99 {seconds[int(0.99 * (len(seconds) - 1))]:.1f} ms"
    )


def in_sqlite(
    market: SyntheticMarket, questions: list[tuple[str, str, str]], limit: int, data_dir: str
) -> None:
    os.environ["FABRIC_DATA_DIR"] = data_dir
    for variable in ("DATABASE_URL", "REDIS_URL"):
        os.environ.pop(variable, None)
    # As in production: with debugging on, Django also records every query it runs.
    os.environ["FABRIC_DEBUG"] = "0"
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-rebac-only")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fabric_site.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import transaction

    from market.rebac.models import RelationTuple
    from market.rebac.selectors import rebac_graph
    from market.rebac.store import as_rows

    call_command("migrate", verbosity=0)
    rows = market.tuples[:limit]
    start = time.perf_counter()
    batch = 20_000
    with transaction.atomic():
        for first in range(0, len(rows), batch):
            dicts = [
                {"object": o, "relation": r, "user": u} for o, r, u in rows[first : first + batch]
            ]
            RelationTuple.objects.bulk_create(as_rows(dicts), batch_size=batch)
    print(f"SQLite: {len(rows):,} tuples inserted in {time.perf_counter() - start:.0f} s")
    graph = rebac_graph()
    latencies(graph, questions[:200])  # warm-up, untimed
    report("SQLite (DatabaseTupleSource)", *latencies(graph, questions))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checks", type=int, default=20_000, help="in-memory checks timed")
    parser.add_argument("--db-checks", type=int, default=20_000, help="SQLite checks timed")
    parser.add_argument(
        "--db-tuples", type=int, default=None, help="tuples stored in SQLite (default: all)"
    )
    args = parser.parse_args()
    machine_info()
    rng = random.Random(SEED)
    start = time.perf_counter()
    market = SyntheticMarket(rng)
    print(f"generated {len(market.tuples):,} tuples in {time.perf_counter() - start:.1f} s")
    in_memory(market, market.questions(rng, args.checks))
    limit = len(market.tuples) if args.db_tuples is None else args.db_tuples
    if limit:
        with tempfile.TemporaryDirectory(prefix="bench_rebac_") as data_dir:
            in_sqlite(market, market.questions(rng, args.db_checks), limit, data_dir)


if __name__ == "__main__":
    main()
