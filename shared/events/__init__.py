"""The event contract in code: envelope, event data models, registry, hash chain."""
