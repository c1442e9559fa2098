"""The 3-D Hilbert codec: reference values, agreement with the per-bit port of
Skilling's algorithm, round trips, continuity, the prefix property, quantisation
and input validation.

The round trip of all 2^30 order-10 codes takes longer than this file may; it is
run in chunks by `python bench/bench_hilbert.py --exhaustive`.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from zones.core.constants import CODE_SPACE, HILBERT_ORDER
from zones.core.hilbert import decode, encode, encode_per_bit, encode_positions, quantise

REFERENCE = [
    ((0, 0, 0), 0),
    ((0, 0, 1), 1),
    ((0, 1, 0), 3),
    ((1, 1, 0), 4),
    ((1, 0, 0), 7),
    ((0, 0, 1023), 153391689),
    ((512, 512, 512), 671088640),
    ((123, 456, 789), 250792394),
    ((1023, 1023, 1023), 766958445),
    ((1023, 0, 0), 1073741823),
]

INTEGER_DTYPES = [np.uint16, np.int16, np.uint32, np.int32, np.uint64, np.int64]


def all_cells(order):
    """Every cell of the order-m cube, as an (8^m, 3) int64 array."""
    side = 1 << order
    return np.indices((side, side, side)).reshape(3, -1).T


def random_cells(n, order=HILBERT_ORDER, seed=0):
    return np.random.default_rng(seed).integers(0, 1 << order, (n, 3), dtype=np.uint16)


def face_adjacent(a, b):
    """Whether each pair of cells differs by exactly 1 in exactly one axis."""
    return np.abs(a.astype(np.int64) - b.astype(np.int64)).sum(axis=1) == 1


def visits_cells_face_to_face(encoder, order):
    """Whether the encoder, read as a path through every cell in code order, only
    ever steps to a face neighbour. The encoder must be a bijection."""
    cells = all_cells(order)
    codes = np.asarray(encoder(cells, order)).astype(np.int64)
    assert np.array_equal(np.sort(codes), np.arange(len(cells))), "not a bijection"
    path = np.empty_like(cells)
    path[codes] = cells
    return bool(face_adjacent(path[:-1], path[1:]).all())


def encode_without_gray_step(cells, order):
    """Skilling's AxestoTranspose and interleave with the Gray encode left out: a
    bijection that is not a continuous curve, to show the checker catches one."""
    x = [cells[:, i].astype(np.int64) for i in range(3)]
    q = 1 << (order - 1)
    while q > 1:
        p = q - 1
        for i in range(3):
            bit_set = (x[i] & q) != 0
            x[0] = np.where(bit_set, x[0] ^ p, x[0])
            t = np.where(bit_set, 0, (x[0] ^ x[i]) & p)
            x[0] ^= t
            x[i] ^= t
        q >>= 1
    code = np.zeros(len(cells), dtype=np.int64)
    for bit in range(order - 1, -1, -1):
        for i in range(3):
            code = (code << 1) | ((x[i] >> bit) & 1)
    return code


@st.composite
def cells_at_an_order(draw, max_rows=64):
    order = draw(st.integers(1, HILBERT_ORDER))
    dtype = draw(st.sampled_from(INTEGER_DTYPES))
    rows = draw(st.integers(0, max_rows))
    elements = st.integers(0, (1 << order) - 1)
    return order, draw(hnp.arrays(dtype, (rows, 3), elements=elements))


# --- reference values -------------------------------------------------------


@pytest.mark.parametrize(("cell", "code"), REFERENCE)
def test_encode_gives_every_reference_value(cell, code):
    assert encode(np.array([cell])).tolist() == [code]


@pytest.mark.parametrize(("cell", "code"), REFERENCE)
def test_per_bit_port_gives_every_reference_value(cell, code):
    assert encode_per_bit(np.array([cell])).tolist() == [code]


@pytest.mark.parametrize(("cell", "code"), REFERENCE)
def test_decode_gives_the_cell_of_every_reference_value(cell, code):
    assert decode(np.array([code])).tolist() == [list(cell)]


def test_codes_fill_the_code_space_and_the_far_floor_corner_ends_it():
    assert encode(np.array([[1023, 0, 0]])).tolist() == [CODE_SPACE - 1]
    assert int(encode(random_cells(100_000)).max()) < CODE_SPACE


# --- agreement with the per-bit port ----------------------------------------


@pytest.mark.parametrize("order", range(1, 6))
def test_encode_agrees_with_the_per_bit_port_on_every_cell(order):
    cells = all_cells(order)
    assert np.array_equal(encode(cells, order), encode_per_bit(cells, order))


def test_encode_agrees_with_the_per_bit_port_on_a_million_random_cells():
    cells = random_cells(1_000_000, seed=1)
    assert np.array_equal(encode(cells), encode_per_bit(cells))


@settings(max_examples=200, deadline=None)
@given(cells_at_an_order())
def test_encode_agrees_with_the_per_bit_port_at_any_order_and_dtype(case):
    order, cells = case
    fast = encode(cells, order)
    assert fast.dtype == np.uint32 and fast.shape == (len(cells),)
    assert np.array_equal(fast, encode_per_bit(cells, order))


@pytest.mark.parametrize("dtype", INTEGER_DTYPES)
def test_encode_gives_the_same_codes_for_every_integer_dtype(dtype):
    cells = random_cells(10_000, seed=2)
    assert np.array_equal(encode(cells.astype(dtype)), encode(cells))


def test_encode_reads_strided_cells_and_leaves_them_unchanged():
    wide = np.random.default_rng(3).integers(0, 1024, (5000, 6), dtype=np.uint16)
    cells = wide[::2, 1:4]
    before = cells.copy()
    assert np.array_equal(encode(cells), encode(np.ascontiguousarray(cells)))
    assert np.array_equal(cells, before)


# --- round trips ------------------------------------------------------------


@pytest.mark.parametrize("order", range(1, 7))
def test_decode_inverts_encode_on_every_cell(order):
    cells = all_cells(order)
    assert np.array_equal(decode(encode(cells, order), order), cells)


@pytest.mark.parametrize("order", range(1, 7))
def test_encode_inverts_decode_on_every_code(order):
    codes = np.arange(1 << (3 * order))
    assert np.array_equal(encode(decode(codes, order), order), codes)


def test_decode_and_encode_invert_each_other_on_sampled_order_10_codes():
    rng = np.random.default_rng(4)
    codes = np.concatenate(
        [
            np.arange(100_000),
            np.arange(CODE_SPACE - 100_000, CODE_SPACE),
            rng.integers(0, CODE_SPACE, 2_000_000),
        ]
    ).astype(np.uint32)
    cells = decode(codes)
    assert cells.dtype == np.uint16 and cells.shape == (len(codes), 3)
    assert np.array_equal(encode(cells), codes)


@settings(max_examples=200, deadline=None)
@given(cells_at_an_order())
def test_decode_inverts_encode_at_any_order_and_dtype(case):
    order, cells = case
    assert np.array_equal(decode(encode(cells, order), order), cells)


# --- continuity -------------------------------------------------------------


@pytest.mark.parametrize("order", range(1, 7))
def test_consecutive_codes_are_face_adjacent_cells(order):
    assert visits_cells_face_to_face(encode, order)


@pytest.mark.parametrize("order", [2, 3, 4])
def test_continuity_check_catches_a_curve_without_the_gray_step(order):
    assert visits_cells_face_to_face(encode_per_bit, order)
    assert not visits_cells_face_to_face(encode_without_gray_step, order)


def test_sampled_consecutive_order_10_codes_are_face_adjacent_cells():
    codes = np.random.default_rng(5).integers(0, CODE_SPACE - 1, 1_000_000, dtype=np.uint32)
    assert face_adjacent(decode(codes), decode(codes + 1)).all()


@settings(deadline=None)
@given(st.integers(1, HILBERT_ORDER), st.data())
def test_any_code_and_its_successor_are_face_adjacent_cells(order, data):
    code = data.draw(st.integers(0, (1 << (3 * order)) - 2))
    cells = decode(np.array([code, code + 1]), order)
    assert face_adjacent(cells[:1], cells[1:]).all()


# --- prefix property --------------------------------------------------------


@pytest.mark.parametrize("order", range(1, HILBERT_ORDER))
def test_top_bits_of_a_code_are_the_code_of_the_cells_top_bits(order):
    cells = random_cells(200_000, seed=6)
    drop = HILBERT_ORDER - order
    assert np.array_equal(encode(cells) >> (3 * drop), encode(cells >> drop, order))


@settings(deadline=None)
@given(st.integers(1, HILBERT_ORDER), st.data())
def test_a_cube_of_cells_is_one_contiguous_run_of_codes(order, data):
    """The cells under one order-m cell hold exactly one aligned run of codes."""
    drop = HILBERT_ORDER - order
    corner = data.draw(hnp.arrays(np.int64, 3, elements=st.integers(0, (1 << order) - 1)))
    size = 1 << drop
    offsets = all_cells(drop) if drop <= 4 else random_cells(4096, drop, seed=7)
    codes = encode(corner * size + offsets)
    top = int(encode(corner[None, :], order)[0])
    assert np.all(codes >> (3 * drop) == top)


# --- quantisation -----------------------------------------------------------

LO = np.array([-10.0, 0.0, 5.0])
HI = np.array([118.0, 64.0, 133.0])


def test_quantise_maps_x_y_z_to_cells_in_x_z_y_order():
    # One metre is 8 x-cells, 16 y-cells and 8 z-cells of these bounds.
    positions = np.array([[-10.0 + 1.0, 0.0 + 2.0, 5.0 + 3.0]])
    assert quantise(positions, LO, HI).tolist() == [[8, 24, 32]]


def test_quantise_floors_within_a_cell():
    positions = np.array([[-10.0 + 0.124, 0.0 + 0.0624, 5.0 + 0.1251]])
    assert quantise(positions, LO, HI).tolist() == [[0, 1, 0]]


def test_quantise_clamps_positions_below_and_above_the_bounds():
    positions = np.array(
        [
            [-1e9, -5.0, -np.inf],
            [1e9, 1000.0, np.inf],
            [118.0, 64.0, 133.0],
            [-10.0, 0.0, 5.0],
        ]
    )
    cells = quantise(positions, LO, HI)
    assert cells.dtype == np.uint16
    assert cells.tolist() == [[0, 0, 0], [1023, 1023, 1023], [1023, 1023, 1023], [0, 0, 0]]


def test_quantise_matches_the_formula_on_random_positions():
    rng = np.random.default_rng(8)
    positions = rng.uniform(LO - 20.0, HI + 20.0, (100_000, 3)).astype(np.float32)
    expected = np.clip(np.floor((positions - LO) / (HI - LO) * 1024), 0, 1023)[:, [0, 2, 1]]
    assert np.array_equal(quantise(positions, LO, HI), expected)


def test_encode_positions_is_encode_of_quantise():
    positions = np.random.default_rng(9).uniform(LO, HI, (10_000, 3))
    assert np.array_equal(encode_positions(positions, LO, HI), encode(quantise(positions, LO, HI)))


def test_the_first_two_splits_of_the_code_space_divide_the_floor():
    """The top two code bits depend on x and z only: four floor quadrants, one each."""
    rng = np.random.default_rng(10)
    positions = rng.uniform(LO, HI, (10_000, 3))
    top = encode_positions(positions, LO, HI) >> 28
    mid = (LO + HI) / 2
    quadrant = (positions[:, 0] >= mid[0]) * 2 + (positions[:, 2] >= mid[2])
    tops = [np.unique(top[quadrant == q]).tolist() for q in range(4)]
    assert all(len(t) == 1 for t in tops)
    assert sorted(t[0] for t in tops) == [0, 1, 2, 3]


# --- validation -------------------------------------------------------------


@pytest.mark.parametrize("shape", [(4,), (4, 2), (4, 4), (4, 3, 1)])
def test_encode_rejects_a_wrong_shape(shape):
    with pytest.raises(ValueError, match="shape"):
        encode(np.zeros(shape, dtype=np.int64))


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.bool_, object])
def test_encode_rejects_cells_that_are_not_integers(dtype):
    with pytest.raises(ValueError, match="integer dtype"):
        encode(np.zeros((2, 3), dtype=dtype))


@pytest.mark.parametrize(
    ("order", "bad", "message"),
    [(10, 1024, "row 1 holds 1024"), (10, -1, "row 1 holds -1"), (3, 8, "row 1 holds 8")],
)
def test_encode_rejects_an_out_of_range_cell_and_names_it(order, bad, message):
    cells = np.zeros((3, 3), dtype=np.int64)
    cells[1, 2] = bad
    for encoder in (encode, encode_per_bit):
        with pytest.raises(ValueError, match=message):
            encoder(cells, order)


@pytest.mark.parametrize("order", [0, 11, -1])
def test_encode_and_decode_reject_an_order_outside_1_to_10(order):
    with pytest.raises(ValueError, match="order"):
        encode(np.zeros((1, 3), dtype=np.int64), order)
    with pytest.raises(ValueError, match="order"):
        decode(np.zeros(1, dtype=np.int64), order)


@pytest.mark.parametrize(("order", "bad"), [(10, CODE_SPACE), (1, 8), (4, 1 << 12), (10, -1)])
def test_decode_rejects_a_code_outside_the_orders_code_space(order, bad):
    with pytest.raises(ValueError, match=f"row 2 holds {bad}"):
        decode(np.array([0, 1, bad]), order)


def test_decode_rejects_a_wrong_shape_and_float_codes():
    with pytest.raises(ValueError, match="shape"):
        decode(np.zeros((3, 1), dtype=np.int64))
    with pytest.raises(ValueError, match="integer dtype"):
        decode(np.zeros(3, dtype=np.float64))


def test_quantise_rejects_a_nan_position():
    positions = np.zeros((3, 3))
    positions[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN: row 2"):
        quantise(positions, LO, HI)
    with pytest.raises(ValueError, match="NaN"):
        encode_positions(positions, LO, HI)


@pytest.mark.parametrize("axis", range(3))
@pytest.mark.parametrize("gap", [0.0, -1.0])
def test_quantise_rejects_bounds_whose_lo_is_not_below_hi(axis, gap):
    hi = HI.copy()
    hi[axis] = LO[axis] + gap
    with pytest.raises(ValueError, match="lo < hi"):
        quantise(np.zeros((1, 3)), LO, hi)


def test_quantise_rejects_a_wrong_shape():
    with pytest.raises(ValueError, match="shape"):
        quantise(np.zeros((2, 2)), LO, HI)
    with pytest.raises(ValueError, match="shape"):
        quantise(np.zeros((2, 3)), LO[:2], HI[:2])


# --- empty input ------------------------------------------------------------


def test_empty_input_gives_empty_output():
    no_cells = np.empty((0, 3), dtype=np.int64)
    assert encode(no_cells).shape == (0,) and encode(no_cells).dtype == np.uint32
    assert encode_per_bit(no_cells).shape == (0,)
    no_codes = np.empty(0, dtype=np.uint32)
    assert decode(no_codes).shape == (0, 3) and decode(no_codes).dtype == np.uint16
    assert quantise(np.empty((0, 3)), LO, HI).shape == (0, 3)
    assert encode_positions(np.empty((0, 3)), LO, HI).shape == (0,)
