from django.db import models

from tenancy.models import Org


class Meter(models.Model):
    """How events of one type become quantities (SPEC §3)."""

    class Aggregation(models.TextChoices):
        SUM = "sum", "Sum"
        COUNT = "count", "Count"
        MAX = "max", "Max"
        UNIQUE_COUNT = "unique_count", "Unique count"
        LATEST = "latest", "Latest"

    key = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200, blank=True)
    event_type = models.CharField(max_length=128, db_index=True)
    # "$.gpu_seconds"; empty for `count`.
    value_path = models.CharField(max_length=200, blank=True)
    aggregation = models.CharField(max_length=16, choices=Aggregation.choices)
    # {"gpu_model": "$.gpu_model", "region": "$.region"}
    group_by = models.JSONField(default=dict, blank=True)
    unit = models.CharField(max_length=50, blank=True, help_text="Unit of the raw quantity.")
    # SPEC §3: negative quantities (corrections, refunds) are refused unless the meter says so.
    allow_negative = models.BooleanField(
        default=False, help_text="Accept negative values (e.g. corrections); refused otherwise."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return self.key

    @property
    def needs_numeric_value(self) -> bool:
        return self.aggregation in (
            self.Aggregation.SUM,
            self.Aggregation.MAX,
            self.Aggregation.LATEST,
        )


class UsageEvent(models.Model):
    """One accepted CloudEvent. Append-only: never updated, never deleted by the application.

    Identity (SPEC §3) is ``(source, event_id)`` within ``namespace``, unique in the database:
    ``platform`` for every collector key, ``org:<org id>`` for an org's own keys. So an org's
    key can never occupy, block or learn of a platform identity or another org's, and a
    collector event repeated under another subject is one event. The org still leads the
    query index (the shard key of a distributed PostgreSQL); identity can move to a key
    table of its own when events are partitioned by time.
    """

    # No foreign key in the database (db_constraint=False): its check locked the org's row
    # (FOR KEY SHARE) for every event inserted, about a quarter of PostgreSQL's time per event
    # (issue 18; bench/ingest.py). Ingestion only writes org ids it has just read; orgs are
    # protected from deletion by the ORM (PROTECT); rollups, charges and invoices keep their
    # foreign keys.
    org = models.ForeignKey(Org, on_delete=models.PROTECT, related_name="+", db_constraint=False)
    # "platform" or "org:<org id>": whose identities these are (the credential, not the subject).
    namespace = models.CharField(max_length=40)
    source = models.CharField(max_length=255)
    event_id = models.CharField(max_length=255, help_text="CloudEvents `id`.")
    type = models.CharField(max_length=128)
    time = models.DateTimeField(help_text="When the usage happened (aware UTC).")
    data = models.JSONField()
    # sha256 of the canonical JSON of the whole event as received (all attributes and data):
    # a fingerprint of what the sender sent. Duplicates are told by comparing type, time, data.
    content_hash = models.CharField(max_length=64)
    received_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["namespace", "source", "event_id"], name="usage_event_identity"
            )
        ]
        indexes = [
            # Serves the rollup (one org, one type, one hour) and the late-event path.
            models.Index(fields=["org", "type", "time"], name="usage_event_org_type_time"),
        ]

    def __str__(self) -> str:
        return f"{self.source}/{self.event_id}"


class UsageEventKey(models.Model):
    """The identity of one stored event, ``(namespace, source, event_id)``, with its time and org.

    On PostgreSQL the event table is partitioned by time (metering/partitions.py) and cannot
    hold a unique key without ``time``; this unpartitioned table holds it, so a duplicate is a
    duplicate in whatever partition its original landed. Ingestion writes the key and the event
    in one statement; retention deletes keys together with their partition (long after the late
    window). On SQLite the event table keeps its own unique constraint and this table stays
    empty.
    """

    pk = models.CompositePrimaryKey("namespace", "source", "event_id")
    namespace = models.CharField(max_length=40)
    source = models.CharField(max_length=255)
    event_id = models.CharField(max_length=255)
    time = models.DateTimeField()
    org_id = models.BigIntegerField()

    class Meta:
        db_table = "metering_usage_event_key"
        indexes = [models.Index(fields=["time"], name="usage_event_key_time")]

    def __str__(self) -> str:
        return f"{self.namespace} {self.source}/{self.event_id}"


class RollupMark(models.Model):
    """An (org, event type, hour) that received events since the last rollup of that hour.

    Ingestion upserts a mark in the same transaction as its events; the rollup takes marks
    with ``FOR UPDATE SKIP LOCKED``, deletes them and recomputes those hours, all in one
    transaction, so an hour that receives events while it is being rolled up is marked again.
    """

    org = models.ForeignKey(Org, on_delete=models.CASCADE, related_name="+")
    event_type = models.CharField(max_length=128)
    hour = models.DateTimeField()
    marked_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["org", "event_type", "hour"], name="rollup_mark_unique")
        ]
        indexes = [models.Index(fields=["marked_at"], name="rollup_mark_marked_at")]

    def __str__(self) -> str:
        return f"{self.org_id} {self.event_type} {self.hour:%Y-%m-%dT%H}"


class HourlyRollup(models.Model):
    """A meter's aggregate for one org, one set of dimension values and one UTC hour."""

    org = models.ForeignKey(Org, on_delete=models.CASCADE, related_name="+")
    meter = models.ForeignKey(Meter, on_delete=models.CASCADE, related_name="rollups")
    hour = models.DateTimeField(help_text="Start of the UTC hour [hour, hour+1h).")
    dimensions = models.JSONField(default=dict)
    # sha256 (hex) of the canonical JSON of `dimensions`: a fixed-length, unique-indexable natural
    # key, whatever the dimension values hold (rollups.dims_key).
    dims_key = models.CharField(max_length=512)
    # In the meter's raw unit (e.g. GPU-seconds); for `unique_count` the hour's distinct count.
    value = models.DecimalField(max_digits=38, decimal_places=12)
    event_count = models.BigIntegerField()
    # For `latest`: the winning event's time and (source, id), so windows pick the latest exactly.
    latest_time = models.DateTimeField(null=True, blank=True)
    latest_tiebreak = models.CharField(max_length=520, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["org", "meter", "hour", "dims_key"], name="hourly_rollup_unique"
            )
        ]
        indexes = [models.Index(fields=["org", "meter", "hour"], name="hourly_rollup_lookup")]

    def __str__(self) -> str:
        return f"{self.meter_id} {self.hour:%Y-%m-%dT%H} {self.dims_key}"


class HourlyDistinctValue(models.Model):
    """The distinct values behind a `unique_count` rollup: a day's unique count is not a sum."""

    org = models.ForeignKey(Org, on_delete=models.CASCADE, related_name="+")
    meter = models.ForeignKey(Meter, on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField()
    dimensions = models.JSONField(default=dict)
    dims_key = models.CharField(max_length=512)
    value = models.CharField(max_length=512)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["org", "meter", "hour", "dims_key", "value"],
                name="hourly_distinct_unique",
            )
        ]

    def __str__(self) -> str:
        return f"{self.meter_id} {self.hour:%Y-%m-%dT%H} {self.value}"


class Device(models.Model):
    """A GPU or MIG instance on a node, as the collectors name it (NVML UUID)."""

    node = models.CharField(max_length=128)
    uuid = models.CharField(max_length=128, help_text="NVML UUID of the GPU or MIG instance.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["node", "uuid"], name="device_unique")]

    def __str__(self) -> str:
        return f"{self.node}/{self.uuid}"


class Allocation(models.Model):
    """Who holds a device over [start, end): the GPU collector bills the holder.

    Allocations of one device never overlap; writers serialize on the device row.
    """

    org = models.ForeignKey(Org, on_delete=models.PROTECT, related_name="+")
    device = models.ForeignKey(Device, on_delete=models.PROTECT, related_name="allocations")
    start = models.DateTimeField()
    end = models.DateTimeField(null=True, blank=True, help_text="Exclusive; empty: still held.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(end__isnull=True) | models.Q(end__gt=models.F("start")),
                name="allocation_end_after_start",
            )
        ]
        indexes = [models.Index(fields=["device", "start"], name="allocation_device_start")]

    def __str__(self) -> str:
        return f"{self.device} → {self.org_id} [{self.start}, {self.end})"


class QuarantinedWork(models.Model):
    """A unit of batch work set aside after it failed (SPEC §8 "Batch work isolates faults").

    One org's bad data (or a bug it triggers) fails only its own unit: a rollup hour, an org's
    rating, close, finalization or export. The unit is recorded here with its error and
    retried with exponential backoff (``next_attempt_at``); every other unit goes on. A unit
    that later succeeds is resolved (``resolved_at``), never deleted, so finance and operators
    can see what was held and for how long. At most one open row per (kind, org, unit).
    """

    class Kind(models.TextChoices):
        ROLLUP = "rollup", "Rollup of an hour"
        RATING = "rating", "Rating"
        CLOSE = "close", "Period close"
        FINALIZE = "finalize", "Invoice finalization"
        EXPORT = "export", "Invoice export"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    org = models.ForeignKey(Org, on_delete=models.CASCADE, related_name="+")
    # Stable name of the unit within (kind, org): "gpu.usage@2026-11-30T02:00:00+00:00" for a
    # rollup hour, "period:42" for one period's rating, "" for an org's whole run.
    unit = models.CharField(max_length=255, blank=True)
    event_type = models.CharField(max_length=128, blank=True, help_text="Rollups only.")
    hour = models.DateTimeField(
        null=True, blank=True, help_text="The rollup hour, or the start of the period."
    )
    error = models.TextField(help_text="The last failure: exception type and message.")
    attempts = models.PositiveIntegerField(default=1, help_text="Failed attempts so far.")
    first_failed_at = models.DateTimeField()
    last_failed_at = models.DateTimeField()
    next_attempt_at = models.DateTimeField(help_text="Not retried before (exponential backoff).")
    resolved_at = models.DateTimeField(null=True, blank=True, help_text="When a retry succeeded.")

    class Meta:
        ordering = ["-last_failed_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "org", "unit"],
                condition=models.Q(resolved_at__isnull=True),
                name="quarantined_work_open_unique",
            )
        ]
        indexes = [
            models.Index(fields=["org", "kind", "resolved_at"], name="quarantined_work_org"),
            models.Index(fields=["kind", "next_attempt_at"], name="quarantined_work_due"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.org_id} {self.unit or '*'} ×{self.attempts}"
