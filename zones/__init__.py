"""Zones: the processes that run the fabric core, and their commands.

Importing this package must stay free of Django so that `zones.core` can be
imported on its own.
"""
