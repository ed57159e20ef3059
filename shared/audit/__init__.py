"""Tamper evidence: checking the hash chains of the event log."""
