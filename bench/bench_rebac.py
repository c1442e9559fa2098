"""Latency of ReBAC checks and listings over 1,000,000 tuples: in memory, SQLite, PostgreSQL.

    python bench/bench_rebac.py                        in memory, then SQLite, then PostgreSQL
    python bench/bench_rebac.py --db-tuples 0          in memory only
    python bench/bench_rebac.py --database sqlite      one database (each runs in its own process)

The market is synthetic (fixed seed): 10 markets × 100 booths × 10 namespaces, 100,000
users, 5,000 groups (some nested), booth visitors, namespace readers and writers, and
440,000 chunks in the namespaces. Half of the checks follow a path that grants (a namespace
reader, a group member, a visitor of the booth a namespace names, a writer, the booth's
creator, the market's operator); the other half ask for a random user and are mostly
denied. The longest paths are chunk → namespace → booth → market and user → group → group →
booth#visitor → namespace#reader. The baseline is a hosted SpiceDB's p95 of 5.8 ms.

Each database run stores the tuples with bulk_create in a fresh database (SQLite under a
temporary folder, PostgreSQL in a scratch schema of --postgres-url), with Django's debugging
off, then times, --runs times over the same data, checks and listings (list_objects of
chunk#can_read for 200 users with grants) two ways: from the table (rebac_graph(), one
query per lookup) and from the process's tuple index (rebac_check and rebac_list_objects,
which ask the change log's revision before each answer, or at most every --poll-seconds).
Each index figure is printed with
its ratio to the table's in the same run, and the runs' median and worst close each part.
"""

import argparse
import gc
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import machine_info  # noqa: E402
from market.rebac.engine import Graph, TupleIndex  # noqa: E402
from market.rebac.market_model import market_model  # noqa: E402

SEED = 20261121
MARKETS, BOOTHS_PER_MARKET, NAMESPACES_PER_BOOTH = 10, 100, 10
USERS, GROUPS, NESTED_GROUPS = 100_000, 5_000, 1_000
CHUNKS = 400_000
BASELINE_P95_MS = 5.8
# list_objects of chunk#can_read for 200 users, in memory, as measured before 2026-12-03.
BASELINE_LIST_P99_MS = 433


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


def latencies(
    graph: Graph, questions: list[tuple[str, str, str]]
) -> tuple[list[float], int, list[float]]:
    """Milliseconds per check, how many were granted, and this thread's CPU milliseconds."""
    seconds, granted, cpu = [], 0, []
    for object, relation, user in questions:
        start, start_cpu = time.perf_counter(), time.thread_time()
        answer = graph.check(object, relation, user)
        cpu.append((time.thread_time() - start_cpu) * 1e3)
        seconds.append((time.perf_counter() - start) * 1e3)
        granted += answer
    return seconds, granted, cpu


def report(name: str, milliseconds: list[float], granted: int, cpu: list[float]) -> None:
    cpu_p50, cpu_p99 = percentiles(cpu)
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
    print(
        f"{'':<34} CPU of this thread per check: p50 {cpu_p50:6.3f} ms, p99 {cpu_p99:6.3f} ms"
        " (the wall time less waiting for the CPU and the database)"
    )


def in_memory(market: SyntheticMarket, questions: list[tuple[str, str, str]], runs: int) -> None:
    start = time.perf_counter()
    index = TupleIndex()
    for object, relation, user in market.tuples:
        index.add(object, relation, user)
    index.rank_objects()  # as the process's index does once loaded, for sorted listings
    gc.collect()
    gc.freeze()  # as the process's index does once loaded (market/rebac/live.py)
    built = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"in-memory index: {len(index):,} tuples in {built:.1f} s (process peak RSS {rss:,.0f} MiB)"
    )
    graph = Graph(market_model(), index)
    latencies(graph, questions[:2_000])  # warm-up, untimed
    users = [(user, "chunk", "can_read") for _, _, user in questions[1:400:2]]
    listings = []
    for run in range(1, runs + 1):
        print(f"in memory run {run} of {runs}:")
        report("in memory (TupleIndex)", *latencies(graph, questions))
        wall, cpu = timed(graph.list_objects, users)
        listings.append(percentiles(wall))
        p50, p99 = listings[-1]
        print(
            f"list_objects(chunk, can_read) for {len(users)} users with grants: "
            f"p50 {p50:.1f} ms, p99 {p99:.1f} ms ({BASELINE_LIST_P99_MS / p99:.1f}x lower than"
            f" the {BASELINE_LIST_P99_MS:g} ms p99 of 2026-12-03; target p99 <= 50 ms:"
            f" {'met' if p99 <= 50 else 'NOT met'}); CPU p99 {percentiles(cpu)[1]:.1f} ms"
        )
    p50s, p99s = [v[0] for v in listings], [v[1] for v in listings]
    print(
        f"in memory over {runs} runs (median, worst): list_objects p50 "
        f"{statistics.median(p50s):.1f} ms, {max(p50s):.1f} ms; p99 "
        f"{statistics.median(p99s):.1f} ms, {max(p99s):.1f} ms"
    )


def percentiles(milliseconds: list[float]) -> tuple[float, float]:
    """(p50, p99) of `milliseconds`."""
    ordered = sorted(milliseconds)
    return ordered[int(0.50 * (len(ordered) - 1))], ordered[int(0.99 * (len(ordered) - 1))]


def timed(call, arguments: list[tuple]) -> tuple[list[float], list[float]]:
    """Milliseconds each call(*a) took, and this thread's CPU milliseconds for each."""
    seconds, cpu = [], []
    for argument in arguments:
        start, start_cpu = time.perf_counter(), time.thread_time()
        call(*argument)
        cpu.append((time.thread_time() - start_cpu) * 1e3)
        seconds.append((time.perf_counter() - start) * 1e3)
    return seconds, cpu


def in_database(
    market: SyntheticMarket,
    questions: list[tuple[str, str, str]],
    vendor: str,
    limit: int,
    runs: int,
    postgres_url: str,
) -> None:
    """Checks and listings from SQLite or PostgreSQL: the table, then each process's index.

    The table path is rebac_graph() (DatabaseTupleSource, one query per lookup). The index
    path is rebac_check and rebac_list_objects as the market calls them: the process's
    LiveTupleIndex, which asks the change log's revision before each check
    (REBAC_INDEX_POLL_SECONDS = 0, the default), so every figure includes that query.
    """
    # As in production: with debugging on, Django also records every query it runs.
    os.environ["FABRIC_DEBUG"] = "0"
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-rebac-only")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fabric_site.settings")
    schema = None
    if vendor == "postgresql":
        import psycopg

        schema = f"bench_rebac_{os.getpid()}"
        with psycopg.connect(postgres_url, autocommit=True) as connection:
            connection.execute(f'create schema "{schema}"')
        parts = urlsplit(postgres_url)
        option = "options=" + quote(f"-c search_path={schema}")
        query = f"{parts.query}&{option}" if parts.query else option
        os.environ["DATABASE_URL"] = urlunsplit(parts._replace(query=query))
    else:
        os.environ.pop("DATABASE_URL", None)
    try:
        database_runs(market, questions, vendor, limit, runs)
    finally:
        if schema is not None:
            from django.db import connections

            connections.close_all()
            with psycopg.connect(postgres_url, autocommit=True) as connection:
                connection.execute(f'drop schema "{schema}" cascade')


def database_runs(
    market: SyntheticMarket,
    questions: list[tuple[str, str, str]],
    vendor: str,
    limit: int,
    runs: int,
) -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction

    from market.rebac.live import live_index
    from market.rebac.models import RelationTuple, RelationTupleChange
    from market.rebac.selectors import rebac_check, rebac_graph, rebac_list_objects
    from market.rebac.store import as_rows

    name = "SQLite" if vendor == "sqlite" else "PostgreSQL"
    print(
        f"{name}: the index asks the change log at most every {os.environ['REBAC_INDEX_POLL_SECONDS']} s"
    )
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
    print(
        f"{name}: {len(rows):,} tuples inserted (and logged) in {time.perf_counter() - start:.0f} s"
    )
    RelationTupleChange.objects.all().delete()  # as pruning would, long after the load
    if vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")

    start = time.perf_counter()
    poll_seconds = float(os.environ["REBAC_INDEX_POLL_SECONDS"])
    index = live_index("default", poll_seconds)
    with index.lock:
        index.refresh()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{name}: the process's index loaded {len(index):,} tuples in "
        f"{time.perf_counter() - start:.1f} s (process peak RSS {rss:,.0f} MiB)"
    )
    graph = rebac_graph()
    listing_users = [(user, "chunk", "can_read") for _, _, user in questions[1:400:2]]
    table_check = graph.check
    index_check = lambda o, r, u: rebac_check(object=o, relation=r, user=u)  # noqa: E731
    table_list = graph.list_objects
    index_list = lambda u, t, r: rebac_list_objects(user=u, type=t, relation=r)  # noqa: E731
    timed(table_check, questions[:200])  # warm-up, untimed
    timed(index_check, questions[:200])
    figures: dict[str, list[tuple[float, float]]] = {}
    for run in range(1, runs + 1):
        print(f"{name} run {run} of {runs}:")
        results = {
            "check, table": timed(table_check, questions),
            "check, index": timed(index_check, questions),
            "list_objects, table": timed(table_list, listing_users),
            "list_objects, index": timed(index_list, listing_users),
        }
        for label, (milliseconds, cpu) in results.items():
            figures.setdefault(label, []).append(percentiles(milliseconds))
            figures.setdefault(f"{label} (CPU)", []).append(percentiles(cpu))
        for kind, target in (("check", 1.0), ("list_objects", 50.0)):
            table_p50, table_p99 = figures[f"{kind}, table"][-1]
            p50, p99 = figures[f"{kind}, index"][-1]
            cpu_p99 = figures[f"{kind}, index (CPU)"][-1][1]
            count = len(questions) if kind == "check" else len(listing_users)
            print(
                f"  {kind:<12} {count:>6,} asked  table p50 {table_p50:7.3f} ms p99 {table_p99:8.3f} ms"
                f"  index p50 {p50:7.3f} ms p99 {p99:8.3f} ms"
                f"  ({table_p99 / p99:5.1f}x the table's p99; target p99 <= {target:g} ms:"
                f" {'met' if p99 <= target else 'NOT met'}; index CPU p99 {cpu_p99:.3f} ms)"
            )
    print(f"{name} over {runs} runs (median, worst):")
    for label, values in figures.items():
        p50s, p99s = [v[0] for v in values], [v[1] for v in values]
        print(
            f"  {label:<26} p50 {statistics.median(p50s):8.3f} ms, {max(p50s):8.3f} ms"
            f"   p99 {statistics.median(p99s):8.3f} ms, {max(p99s):8.3f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checks", type=int, default=20_000, help="in-memory checks timed")
    parser.add_argument("--db-checks", type=int, default=20_000, help="database checks timed")
    parser.add_argument(
        "--db-tuples", type=int, default=None, help="tuples stored in the databases (default: all)"
    )
    parser.add_argument(
        "--database",
        choices=["memory", "sqlite", "postgresql", "all"],
        default="all",
        help="where to answer from (all: in memory, then each database in its own process)",
    )
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each part")
    parser.add_argument(
        "--poll-seconds",
        type=float,
        default=0.0,
        help="REBAC_INDEX_POLL_SECONDS of the index path (0: ask the log before each check)",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"),
        help="PostgreSQL database to create a scratch schema in",
    )
    args = parser.parse_args()
    if args.database == "all":
        forwarded = [f"--checks={args.checks}", f"--db-checks={args.db_checks}"]
        forwarded += [f"--runs={args.runs}", f"--postgres-url={args.postgres_url}"]
        forwarded.append(f"--poll-seconds={args.poll_seconds}")
        if args.db_tuples is not None:
            forwarded.append(f"--db-tuples={args.db_tuples}")
        databases = ["memory"] + (["sqlite", "postgresql"] if args.db_tuples != 0 else [])
        for database in databases:
            # One process each: Django is set up once per process, for one database.
            subprocess.run(
                [sys.executable, __file__, f"--database={database}", *forwarded], check=True
            )
        return
    machine_info(database=args.database)
    rng = random.Random(SEED)
    start = time.perf_counter()
    market = SyntheticMarket(rng)
    print(f"generated {len(market.tuples):,} tuples in {time.perf_counter() - start:.1f} s")
    memory_questions = market.questions(rng, args.checks)
    if args.database == "memory":
        in_memory(market, memory_questions, args.runs)
        return
    limit = len(market.tuples) if args.db_tuples is None else args.db_tuples
    questions = market.questions(rng, args.db_checks)
    with tempfile.TemporaryDirectory(prefix="bench_rebac_") as data_dir:
        os.environ["FABRIC_DATA_DIR"] = data_dir
        os.environ["REBAC_INDEX_POLL_SECONDS"] = str(args.poll_seconds)
        in_database(market, questions, args.database, limit, args.runs, args.postgres_url)


if __name__ == "__main__":
    main()
