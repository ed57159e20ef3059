"""Prometheus metrics of every service (served at /metrics).

Names follow Prometheus conventions (base units, ``_total`` counters). Labels never carry
personal data or worker ids: only service, command route, event type, projection, topic,
partition, and a short reason category.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

COMMANDS = Counter(
    "berlian_commands_total",
    "HTTP commands handled, by outcome (accepted, refused, failed).",
    ["service", "command", "outcome"],
)
COMMAND_SECONDS = Histogram(
    "berlian_command_duration_seconds",
    "Time to handle an HTTP command.",
    ["service", "command"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
EVENTS_APPENDED = Counter(
    "berlian_events_appended_total",
    "Events appended to a service's store.",
    ["service", "event_type"],
)
OUTBOX_BACKLOG = Gauge(
    "berlian_outbox_backlog",
    "Events committed but not yet on the topic, parked ones included; set every relay cycle.",
    ["service"],
)
OUTBOX_PARKED = Gauge(
    "berlian_outbox_parked",
    "Events the broker refused for good, kept aside in the outbox_parked table.",
    ["service"],
)
OUTBOX_PUBLISH_SECONDS = Histogram(
    "berlian_outbox_publish_duration_seconds",
    "Time to publish one batch of the outbox, until the broker acknowledged it.",
    ["service"],
)
EVENTS_CONSUMED = Counter(
    "berlian_events_consumed_total", "Events applied by a projection.", ["projection"]
)
PROJECTION_LAG = Gauge(
    "berlian_projection_lag_records",
    "Records on the topic not yet applied by the projection.",
    ["projection", "topic", "partition"],
)
PROJECTION_LAG_SECONDS = Gauge(
    "berlian_projection_lag_seconds",
    "Seconds since the projection was last caught up with the partition (0 when it is).",
    ["projection", "topic", "partition"],
)
PROJECTION_COMMITS_FAILED = Counter(
    "berlian_projection_offset_commit_failures_total",
    "Informative Kafka offset commits of a projection that failed (its positions are in "
    "PostgreSQL, committed with its effects).",
    ["projection"],
)
REPLAY_RECORDS = Counter(
    "berlian_replay_records_total",
    "Records applied by a replay (rebuild of a projection from the topics).",
    ["projection"],
)
DEAD_LETTERS = Counter(
    "berlian_dead_letters_total", "Records a consumer could not process.", ["consumer", "reason"]
)
DEAD_LETTERS_WAITING = Gauge(
    "berlian_dead_letters_waiting",
    "Dead letters not yet resolved: records that failed and those parked behind them.",
    ["consumer"],
)
PARKED_STREAMS = Gauge(
    "berlian_parked_streams",
    "Streams a consumer holds back behind a dead letter (their later events wait in order).",
    ["consumer"],
)
DEAD_LETTER_AGE_SECONDS = Gauge(
    "berlian_dead_letter_oldest_age_seconds",
    "Age of the consumer's oldest unresolved dead letter (0 when none waits).",
    ["consumer"],
)


def reason_category(reason: str) -> str:
    """A bounded label from a dead-letter reason (its opening words, not its details)."""
    for category in (
        "value is not JSON",
        "hash mismatch",
        "record of",
        "event claims producer",
        "unknown event type",
        "event type",
        "database refused",
        "projection",
        "reaction",
        "parked",
    ):
        if reason.startswith(category):
            return category.replace(" ", "_")
    return "invalid_event"


CHECKPOINT_AGE_SECONDS = Gauge(
    "berlian_checkpoint_age_seconds",
    "Seconds since the newest signed checkpoint of the stream heads (alert when stale).",
)

# The programme's figures, read from the projections (every replica exports the same values:
# aggregate them with max, not sum). Labels are codes and categories, never a person.
WORKERS = Gauge(
    "berlian_workers",
    "Registered workers by status (registered, covered, ended), cohort and kecamatan code.",
    ["status", "cohort", "kecamatan"],
)
BUDGET_RUPIAH = Gauge(
    "berlian_budget_rupiah",
    "Budget allocated to a cohort in a fiscal year.",
    ["fiscal_year", "cohort"],
)
PREMIUMS_RUPIAH = Gauge(
    "berlian_premiums_rupiah",
    "Premiums of a cohort and fiscal year, invoiced and (of those) paid.",
    ["fiscal_year", "cohort", "state"],
)
CLAIMS = Gauge("berlian_claims", "Claims by status and benefit.", ["status", "benefit"])
CLAIMS_WAITING_SECONDS = Gauge(
    "berlian_claims_oldest_waiting_seconds",
    "Time since the oldest claim still in this status (pending or approved) was filed.",
    ["status"],
)
