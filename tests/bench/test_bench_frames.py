"""bench/bench_frames.py: one short run of the current encoding, figures that add up."""

import subprocess
import sys

from bench.bench_frames import BASELINE_COMMIT, measure
from tests.subprocesses import REPO_ROOT


def test_a_short_run_times_the_encoding_and_fingerprints_its_frames():
    figures = measure(str(REPO_ROOT), visitors=60, repeats=3)
    assert figures["ms_per_tick"] > 0
    assert abs(figures["us_per_frame"] * 60 / 1000 - figures["ms_per_tick"]) < 1e-9
    assert len(figures["sha256"]) == 64
    again = measure(str(REPO_ROOT), visitors=60, repeats=1)
    assert again["sha256"] == figures["sha256"]  # the same market, the same frames


def test_the_bench_runs_against_its_baseline_and_both_encode_the_same_frames():
    done = subprocess.run(
        [sys.executable, "bench/bench_frames.py", "--visitors", "90", "--runs", "1"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert BASELINE_COMMIT[:12] in done.stdout
    assert "x less CPU a tick than the baseline" in done.stdout
