"""`manage.py loadtest`: refuses what cannot run, and runs end to end on a server of its own."""

import json
import subprocess
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from tests.live import free_port
from tests.subprocesses import embedded_environment, run_manage


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"visitors": -5}, "--visitors must be at least 1, not -5"),
        ({"visitors": 0}, "--visitors must be at least 1"),
        ({"booths": 33}, "--booths must be 1 to 32"),
        ({"booths": 0}, "--booths must be 1 to 32"),
        ({"booths": 1, "scenario": "choke"}, "choke scenario needs at least 2 booths"),
        ({"booths": 4, "url": "http://127.0.0.1:8000"}, "with --url the market's own booths"),
        ({"duration": 0}, "--duration must be above 0 s"),
        ({"ramp_up": -1}, "--ramp-up cannot be negative"),
        ({"walkers": -1}, "--walkers cannot be negative"),
        ({"zones_per_worker": 0}, "--zones-per-worker must be at least 1"),
        ({"contributors": -1}, "--contributors cannot be negative, not -1"),
        ({"contributors": 2}, "--contributors decide for NPCs: .* --npcs"),
        ({"contributor_processes": 2}, "--contributor-processes needs --contributors"),
        (
            {"contributors": 2, "npcs": 10, "contributor_processes": 3},
            r"--contributor-processes must be 1 to --contributors \(2\), not 3",
        ),
        (
            {"contributors": 2, "npcs": 10, "contributor_capacity": 0},
            "--contributor-capacity must be 1 to 256, not 0",
        ),
        (
            {"contributors": 2, "walkers": 10, "contributor_capacity": 257},
            "--contributor-capacity must be 1 to 256, not 257",
        ),
        ({"kill_contributors": 1}, "--kill-contributors needs --contributors"),
        ({"kill_at": 5.0}, "--kill-at needs --contributors"),
        (
            {"contributors": 2, "npcs": 10, "kill_contributors": -1},
            "--kill-contributors cannot be negative, not -1",
        ),
        (
            {"contributors": 2, "npcs": 10, "kill_contributors": 2},
            "--kill-contributors must leave some of the 2 contributors alive, not kill 2",
        ),
        (
            {"contributors": 2, "npcs": 10, "kill_at": 10.0},
            "--kill-at needs --kill-contributors",
        ),
        (
            {"contributors": 4, "npcs": 10, "kill_contributors": 1, "contributor_processes": 1},
            "--contributor-processes 2 or more",
        ),
        (
            {"contributors": 4, "npcs": 10, "kill_contributors": 1, "duration": 30, "kill_at": 28},
            "--kill-at must leave 5 s .* 5 to 25 s with --duration 30, not 28",
        ),
        (
            {"contributors": 4, "npcs": 10, "kill_contributors": 1, "duration": 8},
            "--kill-at must leave .* 5 to 3 s with --duration 8, not 4",
        ),
    ],
)
def test_values_that_cannot_make_a_run_are_refused_with_what_would(options, message, tmp_path):
    with pytest.raises(CommandError, match=message):
        call_command("loadtest", out=str(tmp_path), **options)


def test_an_unreachable_url_is_refused_at_once_with_how_to_get_a_server(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(CommandError, match=f"no market server answers at {url}") as refused:
        call_command("loadtest", url=url, out=str(tmp_path / "out"))
    assert "runmarket" in str(refused.value)
    assert not (tmp_path / "out").exists()  # nothing written for a run that never started


def _loadtest(
    tmp_path: Path, out: Path, *options: str, timeout: float
) -> subprocess.CompletedProcess:
    """`manage.py loadtest` on a market of its own with 4 booths, every scenario, `options`."""
    result = run_manage(
        "loadtest",
        *("--booths", "4", "--scenario", "all", "--out", str(out), *options),
        env=embedded_environment(tmp_path),
        timeout=timeout,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_a_short_run_on_its_own_embedded_server_reports_frames_latency_and_zones(tmp_path):
    out = tmp_path / "report"
    options = ("--visitors", "20", "--duration", "3", "--ramp-up", "1")
    result = _loadtest(tmp_path, out, *options, timeout=90)
    assert "p99 so far" in result.stderr  # the progress line
    assert "tick → client p99" in result.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["run"]["joined"] == 20 and report["run"]["booths"] == 4
    assert report["run"]["reader"] == "compiled"  # the default: frames read without Python
    assert report["latency_ms"]["frames"] > 0
    assert report["latency_ms"]["p50"] is not None and report["latency_ms"]["p99"] is not None
    assert report["zones"]["reported"] == 4 and report["zones"]["peak_entities"] >= 1
    assert set(report["traffic"]) == {"crowd", "choke", "browse"}
    assert report["cpu_cores"]["harness"] is not None and report["cpu_cores"]["server"] is not None
    assert report["errors"]["join_failures"] == 0
    page = (out / "report.html").read_text()
    assert "<svg" in page and "Verdicts" in page
    charts = sorted(p.name for p in (out / "charts").glob("*.svg"))
    assert len(charts) == page.count("<svg") == 10
    assert charts[1] == "02-tick-client-latency-per-second.svg"
    assert (out / "charts" / charts[1]).read_text() in page  # the page's own chart, as a file
    pid = report["run"]["server"]["pid"]
    assert not Path(f"/proc/{pid}").exists() or _zombie(pid), "the server outlived the run"
    assert "Traceback" not in (out / "server.log").read_text()


def _zombie(pid: int) -> bool:
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state == "Z"


def test_contributor_agents_beside_the_visitors_report_their_npc_decisions(tmp_path):
    out = tmp_path / "report"
    options = ("--visitors", "6", "--duration", "11", "--ramp-up", "3", "--npcs", "120")
    contributors = ("--contributors", "3", "--contributor-capacity", "32")
    kill = ("--contributor-processes", "2", "--kill-contributors", "1", "--kill-at", "5")
    picows = ("--reader", "picows")  # the other reader, end to end
    result = _loadtest(tmp_path, out, *options, *contributors, *kill, *picows, timeout=150)
    assert "NPC decisions dispatched and validated a second" in result.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["run"]["reader"] == "picows" and report["latency_ms"]["frames"] > 0
    assert report["run"]["server"]["walkers"] == 120
    assert report["run"]["contributors"] == {
        "contributors": 3,
        "processes": 2,
        "capacity_each": 32,
        "policy": "utility",
        "kill": 1,
        "kill_at_s": 5.0,
    }
    d = report["npc_decisions"]
    assert d["measured"], d
    # the killed process reports nothing; the other one reports when stopped
    assert d["fleet"]["processes_reported"] == 1 and d["fleet"]["errors"] == []
    failover = d["failover"]
    assert failover["measured"] and failover["killed"] == 1
    assert d["window_s"][1] <= failover["killed_at_s"]  # the steady figures end at the kill
    assert 0 <= failover["detected_s"] <= 5  # its socket closed: dropped at once
    assert failover["reassigned_s"] is not None and failover["after"]["decided_per_s"] > 0
    assert d["decided"] > 0 and d["decided_per_s"] > 0
    # 120 NPCs ask for at most 40 decisions a second, each at least one 50 ms pump in flight
    assert d["decided_per_s"] <= 80 and d["requests_per_s"] >= d["decided_per_s"]
    assert d["contributors_connected"] == 3 and d["capacity_declared"] == 96
    assert d["capacity_ratio"] >= 1.2  # ample: so the zones decide (almost) nothing
    assert d["fallback_share"] <= 0.05
    assert 0 < d["server_answer_ms"]["p99"] < 1000
    assert 0 < d["latency_ms"]["p50"] <= d["latency_ms"]["p95"] < 5000
    counts = d["fleet"]["counts"]
    assert counts["answered"] >= d["decided"] > 0 and 0 < counts["applied"] <= counts["answered"]
    assert report["cpu_cores"]["contributors"] is not None
    assert d["contributors_cpu_ms_per_decision"] is not None
    names = {v["name"]: v for v in report["verdicts"]}
    assert (
        names["NPC decisions dispatched and validated a second"]["measured"] == d["decided_per_s"]
    )
    assert names["NPC fallback share with ample contributed capacity"]["ok"] is True
    dropped = "failover: contributors killed (1), dropped by the dispatcher after"
    assert names[dropped]["ok"] is True
    assert any(v is not None for v in report["series"]["npc_decisions"]["decided_per_s"])
    page = (out / "report.html").read_text()
    assert "NPC decisions (contributor agents" in page
    assert (out / "charts" / "11-npc-decisions-per-second-contributor.svg").exists()
    pid = report["run"]["server"]["pid"]
    assert not Path(f"/proc/{pid}").exists() or _zombie(pid), "the server outlived the run"
    assert "Traceback" not in (out / "server.log").read_text()
    assert "Traceback" not in (out / "contributors.log").read_text()
