"""`manage.py loadtest`: drive simulated visitors over real websockets and report what the market did.

The two reference runs (README.md, "Load tests"):

    REDIS_URL=redis://127.0.0.1:6379/0 python manage.py loadtest \
        --visitors 100 --booths 1 --scenario crowd --duration 60 --ramp-up 5
    REDIS_URL=redis://127.0.0.1:6379/0 python manage.py loadtest \
        --visitors 1000 --booths 32 --scenario all --duration 60 --ramp-up 20

Without --url it starts a market of its own (`runmarket --booths N` on a fresh
database; distributed when REDIS_URL is set) and stops it afterwards. Writes
DIR/report.json and DIR/report.html; prints the verdicts. With --npcs M --contributors N
the market has M NPCs and N contributor agents (zones/load/contributors.py) decide for
them beside the visitors; the report then has their decision figures. Exit code 1 when the run
could not happen (no server, nobody joined), or with --strict when a pass line was
missed or the load was not applied; a missed target is reported, not an error.
"""

import asyncio
import datetime
import json
import signal
import sys
from pathlib import Path
from typing import Any

import uvloop
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from zones.core.constants import MAX_ZONES
from zones.core.dispatch import MAX_CAPACITY
from zones.load.contributors import FleetSettings
from zones.load.html import chart_svgs, report_html
from zones.load.record import RunRecord
from zones.load.report import pass_lines_missed, repartition_lines, report_build, verdict_lines
from zones.load.runner import LoadError, LoadRun, RunSettings
from zones.load.scenarios import SCENARIOS, PlanError
from zones.load.server import OwnServer, ServerError, healthy
from zones.load.sigterm import cancelled_by_sigterm

READERS = ("compiled", "picows")

NON_TTY_PROGRESS_EVERY = 5  # seconds between progress lines when stderr is not a terminal
FAILOVER_BEFORE_S = 5.0  # of the steady phase before killing contributors, at least
FAILOVER_AFTER_S = 5.0  # and after, to see the dispatcher drop them and reassign
WEB_PROCESSES = 1  # web processes of a market the harness starts on Redis (docs/performance.md)
# Zones per worker process of that market: each worker pays its own event loop and Redis
# round trips every tick, so fewer workers cost less; 16 makes two for 32 booths, one per
# core of a 2-core machine (docs/performance.md, "zones per worker process").
ZONES_PER_WORKER = 16

# (flag, type, default, help) of every option that takes a value
OPTIONS: tuple[tuple[str, type, Any, str], ...] = (
    ("--visitors", int, 100, "visitors (default 100)"),
    (
        "--booths",
        int,
        None,
        f"booths of the market started here, 1 to {MAX_ZONES} (default {MAX_ZONES})",
    ),
    ("--duration", float, 60.0, "seconds measured after the ramp-up (default 60)"),
    ("--ramp-up", float, 10.0, "seconds over which the visitors join (default 10)"),
    (
        "--url",
        str,
        None,
        "a running market instead of one started here, e.g. http://127.0.0.1:8000",
    ),
    ("--market", int, 1, "with --url: the market's id (default 1)"),
    ("--server-pid", int, None, "with --url: pid of its runmarket, to report the server's CPU"),
    (
        "--walkers",
        int,
        0,
        "NPCs of the market started here, spread over its booths (default 0; also --npcs)",
    ),
    (
        "--contributors",
        int,
        0,
        "contributor agents (the SDK's Contributor, utility policy) deciding for the NPCs"
        " beside the visitors (default 0: none)",
    ),
    (
        "--contributor-processes",
        int,
        None,
        "with --contributors: processes they run in (default: 1 per 5, at most 4)",
    ),
    (
        "--contributor-capacity",
        int,
        64,
        f"with --contributors: decisions each holds at once, 1 to {MAX_CAPACITY} (default 64)",
    ),
    (
        "--kill-contributors",
        int,
        0,
        "with --contributors: kill this many of them (their own process, SIGKILL) during the"
        " steady phase and report the failover (default 0)",
    ),
    (
        "--kill-at",
        float,
        None,
        "with --kill-contributors: seconds into the steady phase (default half of --duration)",
    ),
    (
        "--spare-zones",
        int,
        0,
        "zones of the market started here beside its booths': a crowded zone splits with"
        " one, and merges back when it empties (default 0: no splits)",
    ),
    (
        "--zones-per-worker",
        int,
        ZONES_PER_WORKER,
        f"with REDIS_URL: zones per worker process (default {ZONES_PER_WORKER})",
    ),
    (
        "--web-processes",
        int,
        WEB_PROCESSES,
        f"with REDIS_URL: web processes of the market started here (default {WEB_PROCESSES})",
    ),
    ("--out", str, None, "report folder (default var/load/<date-time>)"),
    ("--seed", int, 1, "seed of the scenario plans (default 1)"),
    ("--join-concurrency", int, 32, "joins under way at once (default 32)"),
)


class Command(BaseCommand):
    progress_lines = 0
    help = (
        "Drive simulated visitors (the visitor protocol, their frames read by a compiled thread)"
        " over real websockets and report"
        " latency, bandwidth, migrations, zone headroom, errors, overruns and CPU."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        for flag, kind, default, text in OPTIONS:
            aliases = ("--npcs",) if flag == "--walkers" else ()
            parser.add_argument(flag, *aliases, type=kind, default=default, help=text)
        parser.add_argument(
            "--scenario",
            choices=[*SCENARIOS, "all"],
            default="all",
            help="crowd: packed at the entrance; choke: a rush through a gap between two"
            " booths; browse: groups touring booths; all: a third each (default)",
        )
        parser.add_argument(
            "--reader",
            choices=READERS,
            default="compiled",
            help="who reads the visitors' frames: compiled, one compiled thread for every"
            " socket (default; an https market is read by picows); picows, a Python callback"
            " a frame",
        )
        parser.add_argument(
            "--strict",
            action="store_true",
            help="exit 1 when a pass line is missed or the run did not apply its load",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.check_options(options)
        # SIGTERM (a CI timeout) unwinds like Ctrl-C, so the server started here is stopped
        previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            self.load(options)
        finally:
            signal.signal(signal.SIGTERM, previous)

    def load(self, options: dict[str, Any]) -> None:
        server = None
        url, market_id, server_pid = options["url"], options["market"], options["server_pid"]
        if url is not None and not healthy(url, timeout=5.0):
            raise CommandError(
                f"no market server answers at {url} (GET /healthz failed): start one with"
                " `python manage.py runmarket`, or leave out --url to let loadtest start its own"
            )
        out = Path(options["out"] or self.default_out())
        out.mkdir(parents=True, exist_ok=True)
        if url is None:
            server = OwnServer(
                log_path=out / "server.log",
                booths=options["booths"] or MAX_ZONES,
                walkers=options["walkers"],
                spares=options["spare_zones"],
                zones_per_worker=options["zones_per_worker"],
                web_processes=options["web_processes"] if settings.REDIS_URL else 1,
                redis_url=settings.REDIS_URL or None,
            )
        try:
            if server is not None:
                self.say(f"starting a market of {server.booths} booths ({server.log_path})")
                server.start()
                url, market_id = server.url, server.market_id
                server_pid = server.process.pid if server.process else None
            run_settings = RunSettings(
                url=url,
                market_id=market_id,
                visitors=options["visitors"],
                scenario=options["scenario"],
                duration_s=options["duration"],
                ramp_up_s=options["ramp_up"],
                seed=options["seed"],
                join_concurrency=options["join_concurrency"],
                compiled=options["reader"] == "compiled",
                server_pid=server_pid,
                redis_url=settings.REDIS_URL or None,
                contributors=self.fleet_settings(options, out),
            )
            record = self.run(run_settings)
        except (ServerError, LoadError, PlanError) as error:
            raise CommandError(str(error)) from None
        finally:
            if server is not None:
                server.stop()
        record.server = server.describe() if server else {"kind": "external", "pid": server_pid}
        self.write(record, out, strict=options["strict"])

    def check_options(self, options: dict[str, Any]) -> None:
        """Refuse values that cannot make a run, each with what would."""
        if options["visitors"] < 1:
            raise CommandError(f"--visitors must be at least 1, not {options['visitors']}")
        booths = options["booths"]
        if booths is not None and not 1 <= booths <= MAX_ZONES:
            raise CommandError(f"--booths must be 1 to {MAX_ZONES} (one zone each), not {booths}")
        if booths is not None and options["url"]:
            raise CommandError(
                "--booths sets up the market loadtest starts; with --url the market's own"
                " booths are used"
            )
        if options["scenario"] != "crowd" and booths == 1:
            raise CommandError(
                f"the {options['scenario']} scenario needs at least 2 booths; with one booth"
                " use --scenario crowd"
            )
        if options["duration"] <= 0:
            raise CommandError(f"--duration must be above 0 s, not {options['duration']:g}")
        if options["ramp_up"] < 0:
            raise CommandError(f"--ramp-up cannot be negative, not {options['ramp_up']:g}")
        if options["walkers"] < 0:
            raise CommandError(f"--walkers cannot be negative, not {options['walkers']}")
        for name in ("zones_per_worker", "web_processes", "join_concurrency"):
            if options[name] < 1:
                raise CommandError(f"--{name.replace('_', '-')} must be at least 1")
        self.check_contributors(options)

    def check_contributors(self, options: dict[str, Any]) -> None:
        count, processes = options["contributors"], options["contributor_processes"]
        capacity = options["contributor_capacity"]
        if count < 0:
            raise CommandError(f"--contributors cannot be negative, not {count}")
        if not count:
            for name in ("contributor_processes", "kill_contributors", "kill_at"):
                if options[name]:
                    flag = name.replace("_", "-")
                    raise CommandError(f"--{flag} needs --contributors")
            return
        if options["url"] is None and options["walkers"] < 1:
            raise CommandError(
                "--contributors decide for NPCs: give the market started here some with"
                " --npcs (e.g. --npcs 1000)"
            )
        if processes is not None and not 1 <= processes <= count:
            raise CommandError(
                f"--contributor-processes must be 1 to --contributors ({count}), not {processes}"
            )
        if not 1 <= capacity <= MAX_CAPACITY:
            raise CommandError(
                f"--contributor-capacity must be 1 to {MAX_CAPACITY}, not {capacity}"
            )
        self.check_kill(options)

    def check_kill(self, options: dict[str, Any]) -> None:
        count, kill = options["contributors"], options["kill_contributors"]
        if kill < 0:
            raise CommandError(f"--kill-contributors cannot be negative, not {kill}")
        if not kill:
            if options["kill_at"] is not None:
                raise CommandError("--kill-at needs --kill-contributors")
            return
        if kill >= count:
            raise CommandError(
                f"--kill-contributors must leave some of the {count} contributors alive,"
                f" not kill {kill}"
            )
        if options["contributor_processes"] == 1:
            raise CommandError(
                "--kill-contributors kills a process of their own: give"
                " --contributor-processes 2 or more"
            )
        duration, kill_at = options["duration"], options["kill_at"]
        at = duration / 2 if kill_at is None else kill_at
        if not FAILOVER_BEFORE_S <= at <= duration - FAILOVER_AFTER_S:
            raise CommandError(
                f"--kill-at must leave {FAILOVER_BEFORE_S:g} s of the steady phase before it and"
                f" {FAILOVER_AFTER_S:g} s after it: {FAILOVER_BEFORE_S:g} to"
                f" {max(duration - FAILOVER_AFTER_S, 0):g} s with --duration {duration:g},"
                f" not {at:g}"
            )

    def fleet_settings(self, options: dict[str, Any], out: Path) -> FleetSettings | None:
        count = options["contributors"]
        if not count:
            return None
        kill = options["kill_contributors"]
        processes = options["contributor_processes"] or min(4, -(-count // 5))
        if kill:
            processes = max(processes, 2)  # the killed ones have a process of their own
        kill_at = options["kill_at"]
        return FleetSettings(
            count=count,
            processes=processes,
            capacity=options["contributor_capacity"],
            log_path=out / "contributors.log",
            kill=kill,
            kill_at_s=(options["duration"] / 2 if kill_at is None else kill_at) if kill else 0.0,
        )

    def default_out(self) -> Path:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        return Path(settings.DATA_DIR) / "load" / stamp

    def run(self, run_settings: RunSettings) -> RunRecord:
        self.say(
            f"{run_settings.visitors} visitors, scenario {run_settings.scenario}, joining over"
            f" {run_settings.ramp_up_s:g} s, then {run_settings.duration_s:g} s at {run_settings.url}"
        )
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            try:
                record = runner.run(
                    cancelled_by_sigterm(LoadRun(run_settings, self.progress).run())
                )
            except asyncio.CancelledError:
                raise LoadError("stopped by SIGTERM before the run was over") from None
        if sys.stderr.isatty():
            sys.stderr.write("\n")
        return record

    def write(self, record: RunRecord, out: Path, *, strict: bool) -> None:
        report = report_build(record)
        (out / "report.json").write_text(json.dumps(report, indent=1))
        (out / "report.html").write_text(report_html(report))
        charts = out / "charts"  # the same charts as files, for documents that embed them
        charts.mkdir(exist_ok=True)
        for name, svg in chart_svgs(report):
            (charts / name).write_text(svg)
        for line in verdict_lines(report):
            self.stdout.write(line)
        for line in repartition_lines(report):
            self.stdout.write(line)
        self.stdout.write(f"report: {out / 'report.json'} and {out / 'report.html'}")
        missed = pass_lines_missed(report)
        if strict and missed:
            raise CommandError("pass lines missed: " + "; ".join(missed))

    def say(self, line: str) -> None:
        self.stderr.write(line)
        self.stderr.flush()

    def progress(self, line: str) -> None:
        """The live progress line: rewritten in place on a terminal, every few seconds in a log."""
        if sys.stderr.isatty():
            sys.stderr.write("\r" + line[:200].ljust(120))
            sys.stderr.flush()
            return
        self.progress_lines += 1
        if self.progress_lines % NON_TTY_PROGRESS_EVERY == 1:
            self.say(line)
