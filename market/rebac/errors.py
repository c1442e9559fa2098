"""The one family of errors the relation engine raises, all of them ValueErrors."""


class RebacError(ValueError):
    """A model, a tuple or a request the relation engine cannot accept or answer."""


class RebacModelError(RebacError):
    """The authorization model is malformed or has no consistent meaning."""


class RebacTupleError(RebacError):
    """A tuple, object or subject string that is malformed or that the model does not allow."""


class RebacDepthError(RebacError):
    """Resolving a check or a listing needed more nested steps than the engine allows."""
