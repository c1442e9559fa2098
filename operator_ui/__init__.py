"""Operator UI: the dashboard operators watch the live market from."""
