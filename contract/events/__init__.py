"""The event contract in code: the events' data models and field types, their catalogue and
their schemas (the envelope, its hash chain and sealing are the platform's)."""
