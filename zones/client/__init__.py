"""The Python SDK of the visitor protocol (docs/protocol.md): join, walk, see.

Imports only numpy, websockets and `zones.core`, never Django, so a visitor
program or a load harness runs anywhere.
"""

from .layout import Layout
from .visitor import JoinRefused, Visitor, VisitorClosed, VisitorStats, join_ticket

__all__ = ["JoinRefused", "Layout", "Visitor", "VisitorClosed", "VisitorStats", "join_ticket"]
