"""`manage.py smokeburst --url URL --out DIR`: the crossing burst, pictured from the dashboard."""

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from market.services import market_demo_ensure
from operator_ui.watch import Dashboard, WatchError, watcher_credentials
from zones.client.burst import BurstReport, run_burst
from zones.core.constants import BURST_VISITORS


class Command(BaseCommand):
    help = (
        "Run the crossing burst (144 visitors at booth borders, all crossing at once) "
        "against a running market while a headless dashboard saves top-down and orbit "
        "screenshots, and the burst's report, to --out."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="the running market")
        parser.add_argument("--out", type=Path, default=Path("smoke"), help="folder for results")
        parser.add_argument("--visitors", type=int, default=BURST_VISITORS)
        parser.add_argument("--timeout", type=float, default=60.0, help="seconds to arrive")

    def handle(
        self, *args: Any, url: str, out: Path, visitors: int, timeout: float, **_: Any
    ) -> None:
        if visitors < 1:
            raise CommandError("--visitors must be at least 1")
        market = market_demo_ensure()
        username, password = watcher_credentials(market.pk)
        walking = threading.Event()
        finished: dict[str, Any] = {}

        def progress(line: str) -> None:
            self.stderr.write(line)
            if "walks across" in line:
                walking.set()

        def burst() -> None:
            try:
                finished["report"] = asyncio.run(
                    run_burst(url, market.pk, visitors, timeout_s=timeout, progress=progress)
                )
            except Exception as error:  # reported below, in the main thread
                finished["error"] = error
            walking.set()

        saved = []
        try:
            with Dashboard(url, username, password, out) as dashboard:
                saved.append(dashboard.save("0-before-top-down"))
                runner = threading.Thread(target=burst, name="burst")
                runner.start()
                walking.wait(timeout=120)
                time.sleep(1.0)
                saved.append(dashboard.save("1-crossing-top-down"))
                dashboard.mode("orbit")
                saved.append(dashboard.save("2-crossing-orbit"))
                dashboard.mode("topdown")
                runner.join()
                saved.append(dashboard.save("3-after-top-down"))
                dashboard.mode("orbit")
                saved.append(dashboard.save("4-after-orbit"))
                panel = dashboard.text("#hud")
        except WatchError as error:
            raise CommandError(str(error)) from error
        if "error" in finished:
            raise CommandError(f"the burst did not run: {finished['error']}")
        report: BurstReport = finished["report"]
        (out / "panel.txt").write_text(panel + "\n")
        (out / "burst.json").write_text(json.dumps(_figures(report), indent=2) + "\n")
        for path in saved:
            self.stdout.write(f"saved {path}")
        self.stdout.write(
            f"{report.arrived}/{report.visitors} visitors in their destination booth after "
            f"{report.crossing_s:.1f} s; {len(report.jumps)} jumps; frame latency p50 "
            f"{report.latency_p50_ms:.1f} ms, p99 {report.latency_p99_ms:.1f} ms"
        )
        if not report.ok():
            raise CommandError(f"the burst failed: see {out / 'burst.json'}")


def _figures(report: BurstReport) -> dict[str, Any]:
    return {
        "visitors": report.visitors,
        "arrived": report.arrived,
        "missing": report.missing,
        "jumps": [list(j) for j in report.jumps],
        "join_s": round(report.join_s, 2),
        "crossing_s": round(report.crossing_s, 2),
        "frames": report.frames,
        "latency_p50_ms": round(report.latency_p50_ms, 2),
        "latency_p99_ms": round(report.latency_p99_ms, 2),
    }
