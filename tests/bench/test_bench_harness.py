"""bench/bench_harness.py's floor client: its frame counting, and one run against the source."""

import argparse
import socket

import pytest

from bench.bench_harness import FloorReader, one_run, ws_header


def _stream() -> tuple[bytes, int]:
    """Server frames of short (< 126 bytes) and 16-bit lengths, back to back; and their count."""
    sizes = [0, 1, 125, 126, 127, 1_100, 2_400, 3, 65_535]
    data = b"".join(ws_header(0x2, size) + bytes([size % 251]) * size for size in sizes)
    return data, len(sizes)


@pytest.fixture
def reader():
    ends = [socket.socketpair() for _ in range(2)]
    floor = FloorReader([(ends[0][0], b""), (ends[1][0], b"")])
    yield floor, [pair[0].fileno() for pair in ends]
    for pair in ends:
        for end in pair:
            end.close()


@pytest.mark.parametrize("piece", [1, 2, 3, 7, 500, 1 << 16])
def test_frames_are_counted_however_the_reads_cut_them(reader, piece) -> None:
    floor, (fd, other) = reader
    data, count = _stream()
    for at in range(0, len(data), piece):
        floor.walk(fd, memoryview(data)[at : at + piece])
        floor.walk(other, data[:0])  # another socket's empty turn changes nothing of this one's
    assert floor.frames == count
    assert floor.skip[fd] == 0 and floor.carry[fd] == b""


def test_bytes_that_came_with_the_welcome_are_walked_first(reader) -> None:
    floor, (fd, _other) = reader
    data, count = _stream()
    floor.carry[fd] = data[:1]  # as upgrade() hands them over: one byte of the first header
    floor.walk(fd, data[1:])
    assert floor.frames == count


def test_a_floor_run_counts_what_the_source_sends() -> None:
    """The floor client joins through the synthetic source and counts its frames."""
    args = argparse.Namespace(rate=20.0, group=0, visitors=3, warmup=0.3, seconds=1.0)
    figures = one_run("floor", args)
    assert figures["mode"] == "floor"
    # 3 sockets at 20 frames/s over about 1 s: frames come, and no more than were sent
    assert 0 < figures["frames"] <= 3 * 20 * (figures["wall_s"] + 0.5)


def test_a_compiled_run_counts_and_dates_what_the_source_sends() -> None:
    """The harness's own client on the compiled reader, once against the synthetic source."""
    args = argparse.Namespace(rate=20.0, group=0, visitors=3, warmup=0.3, seconds=1.0)
    figures = one_run("compiled", args)
    assert figures["mode"] == "compiled" and figures["bad_frames"] == 0
    assert 0 < figures["frames"] <= 3 * 20 * (figures["wall_s"] + 0.5)
    assert figures["age_p50_ms"] is not None and 0 <= figures["age_p50_ms"] < 1_000
    # the reader wakes at most every 5 ms, whatever comes: never more than twice a frame here
    assert figures["clock_reads_per_frame"] < 2
