"""Event identity moves from (org, source, id) to (namespace, source, id) (SPEC §3).

Which key sent an existing event was never recorded, so the namespace is inferred from the
keys that could have sent it (created by then, not yet revoked): ``platform`` when only a
collector key could have, the org's own namespace otherwise (which keeps the old identity
exactly). Where the same (source, id) of several orgs would all be ``platform``, the first
received stays there and the others keep their org's namespace: every stored event keeps
being billed as before, and a collector resending any of them gets a duplicate.
"""

from typing import Any

from django.db import migrations, models
from django.db.models import CharField, Exists, OuterRef, Q, Value
from django.db.models.functions import Cast, Concat


def fill_namespaces(apps: Any, schema_editor: Any) -> None:
    UsageEvent = apps.get_model("metering", "UsageEvent")
    ApiKey = apps.get_model("tenancy", "ApiKey")
    live = Q(created_at__lte=OuterRef("received_at")) & (
        Q(revoked_at__isnull=True) | Q(revoked_at__gt=OuterRef("received_at"))
    )
    collector = Exists(ApiKey.objects.filter(live, kind="collector"))
    own = Exists(ApiKey.objects.filter(live, kind="org", scope="ingest", org_id=OuterRef("org_id")))
    org_namespace = Concat(Value("org:"), Cast("org_id", CharField()))
    UsageEvent.objects.filter(collector & ~own).update(namespace="platform")
    UsageEvent.objects.exclude(namespace="platform").update(namespace=org_namespace)
    earlier = UsageEvent.objects.filter(
        Q(received_at__lt=OuterRef("received_at"))
        | Q(received_at=OuterRef("received_at"), pk__lt=OuterRef("pk")),
        namespace="platform",
        source=OuterRef("source"),
        event_id=OuterRef("event_id"),
    )
    UsageEvent.objects.filter(Exists(earlier), namespace="platform").update(namespace=org_namespace)


class Migration(migrations.Migration):
    dependencies = [
        ("metering", "0003_meter_allow_negative"),
        ("tenancy", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="usageevent",
            name="namespace",
            field=models.CharField(max_length=40, default=""),
            preserve_default=False,
        ),
        migrations.RunPython(fill_namespaces, migrations.RunPython.noop, elidable=False),
    ]
