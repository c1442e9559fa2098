"""Relation-based access control: an OpenFGA-shaped model, relation tuples and the engine.

This package's own modules are pure Python; only `models`, `store`, `live`, `services` and
`selectors` touch Django, and nothing here imports them.
"""
