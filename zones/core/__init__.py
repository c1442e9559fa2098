"""The fabric core: pure numpy, no Django, Channels or Celery.

Everything a zone needs to decide who owns what lives here as plain arrays and
pure functions, so it can be tested exhaustively and run anywhere.
"""
