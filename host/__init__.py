"""The host: one machine running several markets.

The orchestrator (`manage.py runhost`) supervises one market process per market,
answers a control API on loopback, issues and checks the transfer tokens that take a
visitor through a portal from one market to another, and is the only writer of game
state: characters, per-market persistent state and critical events such as transfer
commit points and giveaway claims. `docs/host.md` describes it.
"""
