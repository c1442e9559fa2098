"""The cyclic garbage collector of the market's long-running processes.

CPython frees most garbage by reference counting; the cyclic collector is for cycles
only, and its full (generation 2) collection walks every tracked object of the process
while everything else waits. A web process serving 1,000 visitors tracks about 150,000
objects, and its full collections came every 10 to 15 s under load, each holding up a
tick's frames by tens of milliseconds (a probe of the collector's callbacks during a
1,000-visitor run: full collections of 30 to 230 ms on the loaded machine), which is the
shape of the occasional second whose p99 is twice the others. Two measures:

* `collector_settle` once the process has loaded what it keeps for good (Django, the
  apps, numpy, the zones' state): a collection, then everything left is moved out of the
  collector's reach (`gc.freeze`), so no full collection walks it again;
* full collections at most once every FULL_EVERY collections of generation 1 instead of
  CPython's 10: garbage cycles wait longer to be freed (a visitor's socket, consumer and
  tasks that left), so memory holds somewhat more of them between two full collections,
  and the processes pause for one a tenth as often.
"""

import gc

YOUNG = 700  # CPython's default: allocations between two collections of generation 0
MIDDLE = 10  # CPython's default: generation-0 collections between two of generation 1
FULL_EVERY = 100  # generation-1 collections between two full ones (CPython: 10)


def collector_settle() -> None:
    """Collect, freeze what survives, and make full collections rarer (module docstring)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG, MIDDLE, FULL_EVERY)
