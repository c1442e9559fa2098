"""The cyclic collector's policy in the market's long-running processes."""

import gc
import json
import subprocess
import sys
import weakref

from fabric_site.collector import FULL_EVERY, MIDDLE, YOUNG, collector_settle
from tests.subprocesses import embedded_environment


def test_settling_collects_cycles_freezes_the_rest_and_makes_full_collections_rarer():
    before_threshold = gc.get_threshold()
    try:

        class Node:
            pass

        cycle = Node()
        cycle.me = cycle
        gone = weakref.ref(cycle)
        del cycle
        collector_settle()
        assert gone() is None  # the cycle was collected before the freeze
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (YOUNG, MIDDLE, FULL_EVERY)
        assert FULL_EVERY > 10  # CPython's default, which the policy exists to change
    finally:
        gc.unfreeze()
        gc.set_threshold(*before_threshold)


def test_a_web_process_settles_its_collector_once_the_application_is_loaded(tmp_path):
    probe = (
        "import gc, json; import fabric_site.asgi; "
        "print(json.dumps([gc.get_threshold(), gc.get_freeze_count()]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env=embedded_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    threshold, frozen = json.loads(out.strip().splitlines()[-1])
    assert threshold == [YOUNG, MIDDLE, FULL_EVERY]
    assert frozen > 10_000  # Django, the apps and numpy, out of the full collections' reach
