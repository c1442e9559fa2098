"""A 32-bit pseudo-random generator that Python and JavaScript compute bit for bit.

xoshiro128**: state four 32-bit words, seeded from a 32-bit seed and a 32-bit
stream number through the 32-bit finaliser `mix32`. Every
operation is a 32-bit add, xor, shift, rotate or multiply kept modulo 2^32, which
JavaScript does exactly with `Math.imul` and `>>> 0`: static/mapgen/prng32.js is
the same generator, and tests/mapgen_vectors.json holds vectors both must match.
"""

MASK32 = 0xFFFFFFFF
GOLDEN32 = 0x9E3779B9


def mix32(value: int) -> int:
    """A bijection of 32-bit words that spreads every input bit over the output."""
    value &= MASK32
    value ^= value >> 16
    value = (value * 0x7FEB352D) & MASK32
    value ^= value >> 15
    value = (value * 0x846CA68B) & MASK32
    value ^= value >> 16
    return value


def _rotl(value: int, bits: int) -> int:
    return ((value << bits) | (value >> (32 - bits))) & MASK32


class Xoshiro128:
    """xoshiro128**: 2^128 - 1 period, 32-bit outputs."""

    __slots__ = ("s0", "s1", "s2", "s3")

    def __init__(self, seed: int, stream: int = 0) -> None:
        if not 0 <= seed <= MASK32:
            raise ValueError(f"seed must be 0..{MASK32}, got {seed}")
        if not 0 <= stream <= MASK32:
            raise ValueError(f"stream must be 0..{MASK32}, got {stream}")
        base = (seed ^ mix32(stream ^ 0x5851F42D)) & MASK32
        # mix32 is a bijection and the four inputs differ, so at most one word is zero.
        self.s0 = mix32(base + GOLDEN32)
        self.s1 = mix32(base + 2 * GOLDEN32)
        self.s2 = mix32(base + 3 * GOLDEN32)
        self.s3 = mix32(base + 4 * GOLDEN32)

    @classmethod
    def from_state(cls, s0: int, s1: int, s2: int, s3: int) -> "Xoshiro128":
        """A generator at a given state (not all zero), as the reference vectors start."""
        if not any((s0, s1, s2, s3)):
            raise ValueError("the all-zero state is a fixed point")
        rng = cls(0)
        rng.s0, rng.s1, rng.s2, rng.s3 = (v & MASK32 for v in (s0, s1, s2, s3))
        return rng

    def next_u32(self) -> int:
        """The next 32-bit output."""
        s0, s1, s2, s3 = self.s0, self.s1, self.s2, self.s3
        result = (_rotl((s1 * 5) & MASK32, 7) * 9) & MASK32
        t = (s1 << 9) & MASK32
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = _rotl(s3, 11)
        self.s0, self.s1, self.s2, self.s3 = s0, s1, s2, s3
        return result

    def below(self, bound: int) -> int:
        """A uniform integer in [0, bound), 1 <= bound <= 2^32, by rejection (no modulo bias)."""
        if not 1 <= bound <= MASK32 + 1:
            raise ValueError(f"bound must be 1..2^32, got {bound}")
        limit = (MASK32 + 1) - ((MASK32 + 1) % bound)
        while True:
            value = self.next_u32()
            if value < limit:
                return value % bound

    def between(self, lo: int, hi: int) -> int:
        """A uniform integer in [lo, hi], both ends included."""
        return lo + self.below(hi - lo + 1)
