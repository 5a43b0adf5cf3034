"""Events partitioned by day on PostgreSQL; identity moves to its own key table (SPEC §8).

SQLite (the embedded default) only gets the (empty) key table: its event table stays one table
with its unique identity constraint. On PostgreSQL the event table is rebuilt as a declarative
range-partitioned table on ``time`` with a default partition (rows land there until
``partitions_ensure`` creates their day's partition and moves them), and every stored event's
identity is copied into ``metering_usage_event_key``.
"""

from django.db import migrations, models

FORWARD = """
INSERT INTO metering_usage_event_key (namespace, source, event_id, time, org_id)
    SELECT namespace, source, event_id, time, org_id FROM metering_usageevent;
ALTER TABLE metering_usageevent RENAME TO metering_usageevent_unpartitioned;
ALTER INDEX usage_event_org_type_time RENAME TO usage_event_org_type_time_unpartitioned;
ALTER INDEX metering_usageevent_pkey RENAME TO metering_usageevent_unpartitioned_pkey;
CREATE SEQUENCE metering_usageevent_part_id_seq;
CREATE TABLE metering_usageevent (
    id bigint NOT NULL DEFAULT nextval('metering_usageevent_part_id_seq'),
    org_id bigint NOT NULL REFERENCES tenancy_org (id) DEFERRABLE INITIALLY DEFERRED,
    namespace varchar(40) NOT NULL,
    source varchar(255) NOT NULL,
    event_id varchar(255) NOT NULL,
    type varchar(128) NOT NULL,
    time timestamptz NOT NULL,
    data jsonb NOT NULL,
    content_hash varchar(64) NOT NULL,
    received_at timestamptz NOT NULL,
    PRIMARY KEY (id, time)
) PARTITION BY RANGE (time);
ALTER SEQUENCE metering_usageevent_part_id_seq OWNED BY metering_usageevent.id;
CREATE TABLE metering_usageevent_default PARTITION OF metering_usageevent DEFAULT;
CREATE INDEX usage_event_org_type_time ON metering_usageevent (org_id, type, time);
INSERT INTO metering_usageevent SELECT id, org_id, namespace, source, event_id, type, time,
    data, content_hash, received_at FROM metering_usageevent_unpartitioned;
SELECT setval('metering_usageevent_part_id_seq',
    (SELECT coalesce(max(id), 0) + 1 FROM metering_usageevent), false);
DROP TABLE metering_usageevent_unpartitioned;
"""


def partition(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in FORWARD.split(";\n"):
            if statement.strip():
                schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [
        ("metering", "0006_rollup_dims_key_digest"),
        ("tenancy", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="UsageEventKey",
            fields=[
                (
                    "pk",
                    models.CompositePrimaryKey(
                        "namespace",
                        "source",
                        "event_id",
                        blank=True,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                ("namespace", models.CharField(max_length=40)),
                ("source", models.CharField(max_length=255)),
                ("event_id", models.CharField(max_length=255)),
                ("time", models.DateTimeField()),
                ("org_id", models.BigIntegerField()),
            ],
            options={
                "db_table": "metering_usage_event_key",
                "indexes": [models.Index(fields=["time"], name="usage_event_key_time")],
            },
        ),
        # Irreversible on PostgreSQL: going back would need the identity constraint rebuilt
        # over every partition's rows.
        migrations.RunPython(partition, migrations.RunPython.noop, elidable=False),
    ]
