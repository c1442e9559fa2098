"""`manage.py zonepid` names the one process holding a zone's lock, or none.

A child process stands in for a zone worker: it takes zone 1's lock as a worker does
(zones/snapshots.py) and waits. The command prints the child's pid, not this process's;
once the child is gone, the pid it left in the lock file is never printed again.
"""

import io
import os
import subprocess
import sys

import pytest
from django.core.management import CommandError, call_command

from market.services import market_demo_ensure
from tests.subprocesses import REPO_ROOT
from zones.serve import snapshot_dir
from zones.snapshots import LOCK_FILE, lock_holder, zone_dir

pytestmark = pytest.mark.django_db

HOLD = """
import sys, time
from pathlib import Path
from zones.snapshots import SnapshotStore
store = SnapshotStore(Path(sys.argv[1]), int(sys.argv[2]))
print("held", flush=True)
time.sleep(120)
"""


@pytest.fixture
def market(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    return market_demo_ensure()


def zonepid(market_id: int, zone: int) -> str:
    out = io.StringIO()
    call_command("zonepid", market=market_id, zone=zone, stdout=out)
    return out.getvalue().strip()


def hold_zone(market, zone: int) -> subprocess.Popen[str]:
    root = snapshot_dir(market.pk, str(market.identity))
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(root), str(zone)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "held"
    return child


def test_it_prints_the_pid_of_the_process_holding_the_zone(market):
    child = hold_zone(market, 1)
    try:
        assert zonepid(market.pk, 1) == str(child.pid)
        assert int(zonepid(market.pk, 1)) != os.getpid()
    finally:
        child.kill()
        child.wait()


def test_a_pid_left_in_the_lock_file_by_a_process_gone_is_not_printed(market, capsys):
    child = hold_zone(market, 1)
    child.kill()
    child.wait()
    lock = zone_dir(snapshot_dir(market.pk, str(market.identity)), 1) / LOCK_FILE
    assert lock.read_text() == f"pid {child.pid}"  # still written there

    with pytest.raises(SystemExit) as ended:
        zonepid(market.pk, 1)

    assert ended.value.code == 1
    assert "zone 1 of Demo Market is not running on this host" in capsys.readouterr().err


def test_a_zone_no_process_ever_ran_is_not_running(market):
    with pytest.raises(SystemExit):
        zonepid(market.pk, 2)


def test_a_zone_the_market_does_not_have_is_refused(market):
    with pytest.raises(CommandError, match="has zones 0 to 2, not 7"):
        zonepid(market.pk, 7)


def test_a_market_that_does_not_exist_is_refused(market):
    with pytest.raises(CommandError, match="there is no market 999"):
        zonepid(999, 0)


def test_only_the_kernel_s_lock_table_counts(tmp_path):
    directory = tmp_path / "zone-01"
    directory.mkdir()
    (directory / LOCK_FILE).write_text("pid 4242")
    stat = (directory / LOCK_FILE).stat()
    where = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
    table = tmp_path / "locks"
    table.write_text(
        f"1: FLOCK  ADVISORY  WRITE 777 {where} 0 EOF\n"
        f"2: -> FLOCK  ADVISORY  WRITE 888 {where} 0 EOF\n"  # a process waiting for it
        "3: POSIX  ADVISORY  WRITE 999 fe:00:1 0 EOF\n"
    )

    assert lock_holder(directory, locks=table) == 777
    table.write_text("3: POSIX  ADVISORY  WRITE 999 fe:00:1 0 EOF\n")
    assert lock_holder(directory, locks=table) is None


def test_the_runbook_kills_a_worker_by_the_pid_zonepid_names():
    runbook = (REPO_ROOT / "docs" / "runbook.md").read_text()

    assert 'kill -9 "$(.venv/bin/python manage.py zonepid --market 1 --zone 1)"' in runbook
    assert "pkill -9 -f" not in runbook
