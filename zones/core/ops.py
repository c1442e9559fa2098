"""The arithmetic the zone rules are written in.

Admission quotas and interest bands are written against this tiny interface so
that the step runs them on numpy integers and the SMT proofs run the very same
functions on z3 terms (tests/zones/core/test_proofs.py).
"""

from typing import Any, Protocol

import numpy as np


class Ops(Protocol):
    def minimum(self, a: Any, b: Any) -> Any: ...

    def maximum(self, a: Any, b: Any) -> Any: ...


class NumpyOps:
    """Element-wise min/max on numpy arrays or Python integers."""

    def minimum(self, a: Any, b: Any) -> Any:
        return np.minimum(a, b)

    def maximum(self, a: Any, b: Any) -> Any:
        return np.maximum(a, b)


NUMPY: Ops = NumpyOps()
