"""Subjects: where an event is published, as dot-separated tokens keyed by ids.

    market.<market>.ops.summary                  a zone worker's summary of its zones
    market.<market>.ops.health                   the supervisor: restarting, quarantined, ok
    market.<market>.booth.<zone>.visitor.<id>    a visitor's own events, in the booth they concern
    market.<market>.booth.<zone>.assets          a booth's assets published or changed
    market.<market>.assets.grants                who may read a namespace changed

A pattern matches subjects token by token: `*` matches exactly one token and `>`, as the
last token, one or more. So a visitor's socket follows `market.1.booth.*.visitor.42`, a
booth's visitors are `market.1.booth.7.visitor.>`, and everything of a market is
`market.1.>` (docs/events.md).
"""

import re
from functools import lru_cache
from typing import Any

MAX_SUBJECT_LENGTH = 200


class SubjectError(ValueError):
    """A subject or pattern that is not well formed."""


def _tokens(text: str, *, pattern: bool) -> list[str]:
    if not text or len(text) > MAX_SUBJECT_LENGTH:
        raise SubjectError(f"a subject has 1 to {MAX_SUBJECT_LENGTH} characters: {text[:60]!r}")
    tokens = text.split(".")
    for i, token in enumerate(tokens):
        if not token or any(c.isspace() for c in token):
            raise SubjectError(f"empty token or whitespace in {text!r}")
        if token in ("*", ">") and not pattern:
            raise SubjectError(f"a subject names no wildcard: {text!r}")
        if token == ">" and i != len(tokens) - 1:
            raise SubjectError(f"'>' may only end a pattern: {text!r}")
    return tokens


_CONCRETE = re.compile(r"[^\s.*>]+(?:\.[^\s.*>]+)*")


def subject_check(subject: str) -> str:
    """`subject` if it is a well-formed concrete subject; SubjectError otherwise."""
    if len(subject) <= MAX_SUBJECT_LENGTH and _CONCRETE.fullmatch(subject):
        return subject
    _tokens(subject, pattern=False)  # says what is wrong
    raise SubjectError(f"a subject's tokens are not empty, '*' or '>': {subject[:60]!r}")


@lru_cache(maxsize=4096)
def _pattern_tokens(pattern: str) -> tuple[str, ...]:
    return tuple(_tokens(pattern, pattern=True))


@lru_cache(maxsize=4096)
def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """The pattern as one regular expression: `*` one token, `>` one or more."""
    parts = []
    for token in _pattern_tokens(pattern):
        parts.append({"*": r"[^.]+", ">": r"[^.]+(?:\.[^.]+)*"}.get(token) or re.escape(token))
    return re.compile(r"\.".join(parts))


def subject_matches(pattern: str, subject: str) -> bool:
    """Whether `subject` is one of the subjects `pattern` names."""
    return _pattern_regex(pattern).fullmatch(subject) is not None


def market_subjects(market_id: int) -> str:
    """Every subject of one market."""
    return f"market.{market_id}.>"


def ops_summary_subject(market_id: int) -> str:
    return f"market.{market_id}.ops.summary"


def ops_health_subject(market_id: int) -> str:
    return f"market.{market_id}.ops.health"


def ops_zones_subject(market_id: int) -> str:
    """Splits and merges of the market's zones."""
    return f"market.{market_id}.ops.zones"


def ops_npcs_subject(market_id: int) -> str:
    """NPC decisions by contributors: the dispatchers' figures and their bans."""
    return f"market.{market_id}.ops.npcs"


def ops_subjects(market_id: int) -> str:
    return f"market.{market_id}.ops.>"


def visitor_subject(market_id: int, zone: int, entity: int) -> str:
    """A visitor's event about booth `zone` (the booth entered, the zone handed to)."""
    return f"market.{market_id}.booth.{zone}.visitor.{entity}"


def visitor_subjects(market_id: int, entity: int) -> str:
    """Every event of one visitor, whatever booth it concerns."""
    return f"market.{market_id}.booth.*.visitor.{entity}"


def booth_visitors_subjects(market_id: int, zone: int) -> str:
    """Every visitor event of one booth."""
    return f"market.{market_id}.booth.{zone}.visitor.>"


def booth_assets_subject(market_id: int, zone: int) -> str:
    return f"market.{market_id}.booth.{zone}.assets"


def assets_subjects(market_id: int) -> str:
    """Every booth's asset events of one market."""
    return f"market.{market_id}.booth.*.assets"


def grants_subject(market_id: int) -> str:
    return f"market.{market_id}.assets.grants"


def stream_name(market_id: int) -> str:
    """The one stream that holds every subject of a market, in publish order."""
    return f"market.{market_id}"


class _Node:
    __slots__ = ("children", "values", "rest")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.values: set[Any] = set()  # patterns ending at this token
        self.rest: set[Any] = set()  # patterns ending in '>' after this token


class SubjectIndex:
    """Patterns and what follows each, matched against a subject token by token.

    A process's hub hands every event to the subscriptions whose patterns match its
    subject; testing each subscription's patterns in turn costs a few microseconds a
    subscription, so a thousand visitors' sockets made every event cost milliseconds.
    Walking the event's tokens through a tree of the patterns costs the same whatever the
    number of subscriptions.
    """

    def __init__(self) -> None:
        self._root = _Node()

    def add(self, pattern: str, value: Any) -> None:
        node = self._root
        for token in _pattern_tokens(pattern):
            if token == ">":
                node.rest.add(value)
                return
            node = node.children.setdefault(token, _Node())
        node.values.add(value)

    def discard(self, pattern: str, value: Any) -> None:
        node = self._root
        path = []
        for token in _pattern_tokens(pattern):
            if token == ">":
                node.rest.discard(value)
                break
            child = node.children.get(token)
            if child is None:
                return
            path.append((node, token))
            node = child
        else:
            node.values.discard(value)
        for parent, token in reversed(path):  # drop the branches left empty
            child = parent.children[token]
            if child.children or child.values or child.rest:
                break
            del parent.children[token]

    def match(self, subject: str) -> set[Any]:
        """Every value whose pattern names `subject`."""
        found: set[Any] = set()
        tokens = subject.split(".")
        pending = [(self._root, 0)]
        while pending:
            node, i = pending.pop()
            if i == len(tokens):
                found |= node.values
                continue
            found |= node.rest
            for key in (tokens[i], "*"):
                child = node.children.get(key)
                if child is not None:
                    pending.append((child, i + 1))
        return found
