"""The fast path's memory of readable chunks: its size bound, and writers in two threads."""

import sys
import threading
import time

from chunks import permissions
from chunks.permissions import ReadableChunks


def test_the_oldest_entries_go_first_past_the_bound(monkeypatch, settings):
    settings.CHUNK_READ_CACHE_SECONDS = 10
    monkeypatch.setattr(permissions, "MAX_REMEMBERED", 3)
    memory = ReadableChunks()

    for number in range(5):
        memory.remember("user:*", f"{number:064x}", number, public=True)

    assert len(memory) == 3
    assert [memory.size_of(f"{number:064x}") for number in range(5)] == [None, None, 2, 3, 4]


def test_forgetting_after_a_commit_in_another_thread_is_safe(monkeypatch, settings):
    """Commits forget from the thread that committed while the event loop remembers."""
    settings.CHUNK_READ_CACHE_SECONDS = 10
    monkeypatch.setattr(permissions, "MAX_REMEMBERED", 50)
    memory, errors = ReadableChunks(), []
    until = time.monotonic() + 0.5

    def keep_going(step):
        count = 0
        try:
            while time.monotonic() < until:
                step(count)
                count += 1
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(repr(error))

    def remember(count):
        memory.remember(f"visitor:1-{count % 7}", f"{count:064x}", 1, public=False)

    def forget(count):
        memory.forget_principal(f"visitor:1-{count % 7}")
        if count % 5 == 0:
            memory.clear()

    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        threads = [threading.Thread(target=keep_going, args=(step,)) for step in (remember, forget)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(previous)

    assert errors == []
    assert len(memory) <= 50
    assert all(chunk in memory._of_principal.get(who, ()) for who, chunk in memory._until)


def test_a_yes_asked_before_a_forgetting_is_not_remembered(settings):
    settings.CHUNK_READ_CACHE_SECONDS = 10
    memory = ReadableChunks()
    chunk = "a" * 64

    before_clear = memory.asking("user:*")
    memory.clear()
    memory.remember("user:*", chunk, 1, True, before_clear)
    before_forget = memory.asking("visitor:1-2")
    memory.forget_principal("visitor:1-2")
    memory.remember("visitor:1-2", chunk, 1, False, before_forget)
    after = memory.asking("visitor:1-2")
    memory.remember("visitor:1-2", chunk, 1, False, after)

    assert memory.size_of(chunk) is None
    assert memory.lookup("visitor:1-2", chunk) == (1, False)


def test_a_yes_lasts_from_its_asking(settings):
    settings.CHUNK_READ_CACHE_SECONDS = 10
    memory, clock = ReadableChunks(), [100.0]
    memory.clock = lambda: clock[0]
    chunk = "b" * 64

    asked = memory.asking("user:*")
    clock[0] = 104.0
    memory.remember("user:*", chunk, 1, True, asked)

    clock[0] = 109.9
    assert memory.size_of(chunk) == 1
    clock[0] = 110.0
    assert memory.size_of(chunk) is None
