"""Market events: typed, published once, kept in a stream per market, resumable.

    types.py      every event type: its name, version, typed payload and subject
    subjects.py   the subject tree and wildcard patterns
    envelope.py   an event's bytes in a stream
    publish.py    the one publish path (direct, or after commit through the outbox)
    outbox.py     the transactional outbox and its relay
    backends/     where streams are kept: in process, Redis Streams, NATS JetStream
    streams.py    this process's backend and hubs, from the settings
    hub.py        one reader per stream and process; bounded, resumable subscriptions
    projections.py  the state a consumer builds from events, and its snapshot

docs/events.md describes them for users of the streams.
"""
