"""`manage.py soak`: a market under steady churn for a long time, judged for leaks.

    python manage.py soak                 # 30 minutes, 10,000 visitors (docs/performance.md)
    python manage.py soak --short         # 90 s, 100 visitors: what the test suite runs

It starts a Redis of its own (or uses `--redis-url`, which must serve nothing else)
and a distributed market on it (`runmarket --booths N` on a fresh database), makes a
creator with a namespace in the first booth, then runs zones/load/soak.py: visitors
arriving and leaving, walking across booths, the creator uploading and granting. Every
`--sample-every` seconds it reads each process's memory and descriptors, Redis, and the
database's rows, and rewrites DIR/report.json; at the end it writes DIR/soak.svg (every
figure relative to its start after the warm-up) and DIR/charts/*.svg, and prints whether
everything stayed flat after the warm-up. Exit 1 when the soak could not run, or with
--strict when a figure grew.
"""

import asyncio
import datetime
import json
import os
import re
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import uvloop
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from zones.core.constants import MAX_ZONES
from zones.load.redis_server import OwnRedis, RedisServerError
from zones.load.server import FOREIGN_VARIABLES, OwnServer, ServerError
from zones.load.sigterm import cancelled_by_sigterm
from zones.load.soak import SoakError, SoakRun, SoakSettings
from zones.load.soak_report import soak_charts, soak_report_build, verdict_lines

CREATOR = "soak-creator"
NAMESPACE_LINE = re.compile(r"namespace (\d+) ")

# (flag, type, full run, --short, help) of every option that takes a value
OPTIONS: tuple[tuple[str, type, Any, Any, str], ...] = (
    ("--duration", float, 1800.0, 90.0, "seconds of load"),
    ("--visitors", int, 10_000, 100, "distinct newcomers arriving over the run"),
    ("--stay", float, 60.0, 15.0, "seconds a visitor stays, on average (± 50 %%)"),
    ("--regulars", int, 50, 5, "visitor keys that keep coming back"),
    ("--sample-every", float, 60.0, 5.0, "seconds between two readings"),
    ("--warm-up", float, 300.0, 30.0, "seconds before the figures must stay flat"),
    ("--booths", int, 8, 3, f"booths of the market, 2 to {MAX_ZONES}"),
    ("--zones-per-worker", int, 4, 3, "zones per zone worker process"),
    ("--web-processes", int, 1, 1, "web processes of the market"),
    ("--upload-every", float, 10.0, 5.0, "seconds between two uploads of the creator"),
    ("--grant-every", float, 15.0, 5.0, "seconds between two grants or revokes"),
    ("--seed", int, 1, 1, "seed of the plans and the uploaded contents"),
    ("--event-log-len", int, 10_000, 1_000, "events the market's event log keeps"),
    ("--outbox-keep", float, 120.0, 10.0, "seconds the outbox keeps a relayed event"),
)
"""The last two shrink the market's two buffers bounded by length or age (defaults 100,000
events and an hour) so that they fill within the warm-up: at this churn the defaults fill in
about half an hour and an hour, and a run shorter than that could not tell them from a leak."""


class Command(BaseCommand):
    help = (
        "Run a market under steady churn (visitors joining and leaving, walking across booths,"
        " uploads, grants) and report every process's memory and descriptors, Redis's memory"
        " and the database's rows over time, judged flat after the warm-up (within 5 %)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--short",
            action="store_true",
            help="the short run the test suite makes; each option below still overrides it",
        )
        for flag, kind, full, short, text in OPTIONS:
            parser.add_argument(
                flag, type=kind, help=f"{text} (default {full:g}; --short {short:g})"
            )
        parser.add_argument(
            "--redis-url", help="a Redis serving nothing else (default: one started here)"
        )
        parser.add_argument("--out", help="report folder (default var/soak/<date-time>)")
        parser.add_argument("--strict", action="store_true", help="exit 1 when a figure grew")

    def handle(self, *args: Any, **options: Any) -> None:
        for flag, _, full, short, _ in OPTIONS:
            name = flag.removeprefix("--").replace("-", "_")
            if options[name] is None:
                options[name] = short if options["short"] else full
        self.check_options(options)
        out = Path(options["out"] or Path(settings.DATA_DIR) / "soak" / self.stamp())
        out.mkdir(parents=True, exist_ok=True)
        previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            report = self.soak(options, out)
        finally:
            signal.signal(signal.SIGTERM, previous)
        for line in verdict_lines(report):
            self.stdout.write(line)
        self.stdout.write(f"report: {out / 'report.json'}, chart: {out / 'soak.svg'}")
        if options["strict"] and report["flat"] is not True:
            raise CommandError("figures grew after the warm-up: " + ", ".join(report["grew"]))

    def check_options(self, options: dict[str, Any]) -> None:
        if not 2 <= options["booths"] <= MAX_ZONES:
            raise CommandError(f"--booths must be 2 to {MAX_ZONES}: visitors walk across booths")
        for name in (
            "duration",
            "stay",
            "sample_every",
            "upload_every",
            "grant_every",
            "outbox_keep",
        ):
            if options[name] <= 0:
                raise CommandError(f"--{name.replace('_', '-')} must be above 0")
        if options["warm_up"] < 0 or options["warm_up"] >= options["duration"]:
            raise CommandError("--warm-up must be 0 or more and shorter than --duration")
        for name in ("visitors", "zones_per_worker", "web_processes", "event_log_len"):
            if options[name] < 1:
                raise CommandError(f"--{name.replace('_', '-')} must be at least 1")
        if options["regulars"] < 0:
            raise CommandError("--regulars cannot be negative")

    def stamp(self) -> str:
        return datetime.datetime.now().strftime("%Y%m%d-%H%M%S")

    def soak(self, options: dict[str, Any], out: Path) -> dict[str, Any]:
        folder = Path(tempfile.mkdtemp(prefix="fabric-soak-"))
        own_redis = None if options["redis_url"] else OwnRedis(folder / "redis")
        server = None
        try:
            if own_redis is not None:
                own_redis.start()
            redis_url = options["redis_url"] or own_redis.url  # type: ignore[union-attr]
            server = OwnServer(
                log_path=out / "server.log",
                booths=options["booths"],
                zones_per_worker=options["zones_per_worker"],
                web_processes=options["web_processes"],
                redis_url=redis_url,
                settings={
                    "FABRIC_EVENTS_MAX_LEN": str(options["event_log_len"]),
                    "FABRIC_OUTBOX_KEEP_S": str(options["outbox_keep"]),
                },
            )
            self.say(
                f"starting a market of {server.booths} booths on {redis_url} ({server.log_path})"
            )
            server.start()
            assert server.process is not None and server.data_dir is not None
            database = server.data_dir / "fabric.sqlite3"
            soak_settings = SoakSettings(
                url=server.url,
                market_id=server.market_id,
                duration_s=options["duration"],
                visitors=options["visitors"],
                stay_s=options["stay"],
                regulars=options["regulars"],
                sample_s=options["sample_every"],
                warm_up_s=options["warm_up"],
                upload_every_s=options["upload_every"],
                grant_every_s=options["grant_every"],
                seed=options["seed"],
                server_pid=server.process.pid,
                redis_url=redis_url,
                redis_pid=own_redis.pid if own_redis else None,
                database=database,
                creator=self.creator(server.data_dir, server.market_id, database),
            )
            run = {
                **soak_settings.describe(),
                "server": {**server.describe(), "settings": server.settings},
                "redis": "started by the soak" if own_redis else "given",
            }
            return self.run(soak_settings, run, out)
        except (ServerError, RedisServerError, SoakError) as error:
            raise CommandError(str(error)) from None
        finally:
            if server is not None:
                server.stop()
            if own_redis is not None:
                own_redis.stop()
            shutil.rmtree(folder, ignore_errors=True)

    def creator(self, data_dir: Path, market_id: int, database: Path) -> tuple[str, str, int, int]:
        """A user who writes a namespace of the market's first booth, made with manage.py
        against the server's database: (username, password, booth id, namespace id)."""
        env = {k: v for k, v in os.environ.items() if k not in (*FOREIGN_VARIABLES, "REDIS_URL")}
        env["FABRIC_DATA_DIR"] = str(data_dir)
        password = secrets.token_urlsafe(16)
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
            booth = connection.execute(
                "SELECT id FROM market_booth WHERE market_id = ? ORDER BY zone_index LIMIT 1",
                (market_id,),
            ).fetchone()[0]
        made = self.manage(
            env, "operator_add", CREATOR, "--password", password, "--market", str(market_id)
        )
        found = NAMESPACE_LINE.search(
            self.manage(
                env,
                "namespace_create",
                "--booth",
                str(booth),
                "--slug",
                "soak",
                "--writer",
                CREATOR,
            )
        )
        if not made or found is None:
            raise SoakError("the creator's namespace could not be made")
        return CREATOR, password, int(booth), int(found[1])

    def manage(self, env: dict[str, str], *args: str) -> str:
        manage_py = Path(settings.BASE_DIR) / "manage.py"
        done = subprocess.run(
            [sys.executable, str(manage_py), *args], env=env, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise SoakError(f"manage.py {args[0]} failed: {done.stderr.strip()[-500:]}")
        return done.stdout

    def run(self, soak_settings: SoakSettings, run: dict[str, Any], out: Path) -> dict[str, Any]:
        self.say(
            f"{soak_settings.visitors} visitors over {soak_settings.duration_s:g} s,"
            f" a reading every {soak_settings.sample_s:g} s, warm-up {soak_settings.warm_up_s:g} s"
        )
        soak = SoakRun(soak_settings, self.say, lambda _: self.write(soak, run, out, charts=False))
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            try:
                runner.run(cancelled_by_sigterm(soak.run()))
            except (asyncio.CancelledError, KeyboardInterrupt):
                self.say("stopped before the end: the report holds the readings so far")
        return self.write(soak, run, out, charts=True)

    def write(
        self, soak: SoakRun, run: dict[str, Any], out: Path, *, charts: bool
    ) -> dict[str, Any]:
        """report.json from the readings so far; with `charts`, the SVG charts too."""
        described = {**run, "started_at": soak.started_at}
        report = soak_report_build(described, soak.samples, soak.settings.warm_up_s)
        (out / "report.json").write_text(json.dumps(report, indent=1))
        if charts and soak.samples:
            (out / "charts").mkdir(exist_ok=True)
            for name, svg in soak_charts(report):
                (out / name if name == "soak.svg" else out / "charts" / name).write_text(svg)
        return report

    def say(self, line: str) -> None:
        self.stderr.write(line)
        self.stderr.flush()
