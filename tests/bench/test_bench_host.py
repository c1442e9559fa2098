"""bench/bench_host.py: its options, its pieces, and one small run of the whole bench."""

import subprocess
import sys

import numpy as np
import pytest

from bench.bench_host import PortalWatch, args_parse
from tests.subprocesses import REPO_ROOT


def _refusal(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exited:
        args_parse(argv=argv)
    assert exited.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--visitors", "0"], "argument --visitors: must be at least 1, got 0"),
        (["--transfers", "ten"], "argument --transfers: must be a whole number, got 'ten'"),
        (["--kills", "-1"], "argument --kills: must be at least 0, got -1"),
        (["--walkers", "1.5"], "argument --walkers: must be a whole number, got '1.5'"),
        (["--booths", "33"], "argument --booths: must be at most 32, got 33"),
        (["--recover", "1000,x"], "must be comma-separated whole numbers, got 'x' in '1000,x'"),
        (["--recover", "0"], "argument --recover: each size must be at least 1, got 0"),
    ],
)
def test_a_bad_option_is_refused_naming_it(argv, said, capsys) -> None:
    assert said in _refusal(argv, capsys)


def test_fewer_transfers_than_visitors_is_refused(capsys) -> None:
    said = _refusal(["--visitors", "5", "--transfers", "4"], capsys)
    assert "--transfers (4) must be at least --visitors (5)" in said


def test_the_defaults_are_the_documented_run() -> None:
    args = args_parse(argv=[])
    assert (args.visitors, args.transfers, args.walkers, args.kills) == (20, 200, 0, 3)
    assert args.recover == [1000, 10000]


class _Walker:
    position: np.ndarray | None = None


def _watch(frames: list[tuple[float, float]]) -> PortalWatch:
    """A watch over the portal x 0..4, z 10..11 that saw a walker at (z, received_ms)."""
    watch, walker = PortalWatch(), _Walker()
    watch.arm(portal={"rect": [0.0, 10.0, 4.0, 11.0]})
    for z, at in frames:
        walker.position = np.array([2.0, 1.0, z])
        watch.frame_seen(walker, None, None, None, at)
    return watch


def test_the_step_is_the_first_frame_inside_the_portal_before_the_transfer_message() -> None:
    watch = _watch([(12.0, 100.0), (10.8, 150.0), (10.6, 200.0)])
    assert watch.step_ms(message_ms=160.0) == (150.0, False)


def test_with_no_frame_inside_the_step_is_the_last_frame_before_the_message() -> None:
    # 11.0 is the portal's far edge: outside in centimetres, inside for the market's float32
    watch = _watch([(11.4, 100.0), (11.2, 150.0), (11.0, 200.0), (10.8, 260.0)])
    assert watch.step_ms(message_ms=205.0) == (200.0, True)


def test_a_frame_on_the_near_edge_is_not_taken_for_the_step() -> None:
    # 10.0 is inside by the rectangle's test, yet the market may have seen 9.99999
    watch = _watch([(9.8, 100.0), (10.0, 150.0), (10.2, 200.0)])
    assert watch.step_ms(message_ms=210.0) == (200.0, False)
    # the control: had the message followed the edge frame, that frame was the step
    assert watch.step_ms(message_ms=160.0) == (150.0, True)


def test_frames_after_the_message_are_never_the_step() -> None:
    assert _watch([(10.8, 300.0)]).step_ms(message_ms=250.0) == (None, False)


def test_the_bench_runs_a_small_host_end_to_end(tmp_path) -> None:
    ran = subprocess.run(
        [sys.executable, "bench/bench_host.py", "--visitors", "2", "--transfers", "4"]
        + ["--kills", "1", "--recover", "20"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    out = ran.stdout
    assert "transfer message -> welcome" in out and "(count 4)" in out, out
    assert "baseline: plain join -> welcome" in out and "transfer/join ratio" in out, out
    assert "failures: 0" in out, out
    assert "market 2: new process" in out and "/healthz 200" in out, out
    assert "20 completed transfers (100 events)" in out, out
