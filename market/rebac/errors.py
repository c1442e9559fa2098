"""The one family of errors the relation engine raises, all of them ValueErrors."""


class RebacError(ValueError):
    """A model, a tuple or a request the relation engine cannot accept or answer."""


class RebacModelError(RebacError):
    """The authorization model is malformed or has no consistent meaning."""


class RebacTupleError(RebacError):
    """A tuple, object or subject string that is malformed or that the model does not allow."""


class RebacUnresolvedError(RebacError):
    """A check or listing whose answer the tuples do not determine; nothing is granted."""


class RebacDepthError(RebacUnresolvedError):
    """Resolving a check or a listing needed more nested steps than the engine allows."""


class RebacCycleError(RebacUnresolvedError):
    """A check that loops through an exclusion: the relation would exclude itself."""
