"""bench/load_size.py: the strict CI load run's visitors by the machine's pace."""

import math
import re
import subprocess
import sys

import pytest

from bench.load_size import FLOOR_VISITORS, FULL_VISITORS, visitors_for
from tests.subprocesses import REPO_ROOT


@pytest.mark.parametrize(
    ("pace_ms", "visitors"),
    [
        (0.44, 1000),  # the fastest day on record
        (0.7, 1000),  # the last pace of the full load
        (0.8, 850),  # 875: down to a step of 50
        (0.943, 700),  # the CI run that asked 950 and joined 829
        (1.16, 600),
        (1.5, 450),
        (2.0, 350),
        (10.0, FLOOR_VISITORS),  # never under the floor
    ],
)
def test_a_slower_machine_takes_fewer_visitors_in_steps_of_fifty(pace_ms, visitors):
    assert visitors_for(pace_ms) == visitors


@pytest.mark.parametrize("pace_ms", [0.0, -1.0, math.nan])
def test_a_pace_that_cannot_be_is_refused(pace_ms):
    with pytest.raises(ValueError, match="a zone step takes some time"):
        visitors_for(pace_ms)


def test_the_script_measures_the_step_and_prints_the_count_it_says_why():
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "load_size.py")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    count = int(done.stdout)
    said = re.search(r"walking entities: ([\d.]+) ms at the median here", done.stderr)
    assert said is not None, done.stderr
    assert FLOOR_VISITORS <= count <= FULL_VISITORS and count % 50 == 0
    pace = float(said[1])  # printed to 3 decimals: the count is that of a pace within 0.0005
    assert count in {visitors_for(pace - 0.0005), visitors_for(pace + 0.0005)}
    assert f"{count:,} visitors" in done.stderr
