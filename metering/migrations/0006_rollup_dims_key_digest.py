"""Rollup keys become the sha256 of the dimensions' canonical JSON (rollups.dims_key).

The key used to be that JSON itself, ASCII-escaped, in a varchar(512): a 90-character
Cyrillic value overflowed it and stopped the rollup. A digest has a fixed length.
"""

import hashlib
import json
from typing import Any

from django.db import migrations


def _digest(dimensions: dict[str, Any]) -> str:
    text = json.dumps(dimensions, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _text(dimensions: dict[str, Any]) -> str:
    return json.dumps(dimensions, sort_keys=True, separators=(",", ":"))


def _rekey(apps: Any, key: Any) -> None:
    for name in ("HourlyRollup", "HourlyDistinctValue"):
        model = apps.get_model("metering", name)
        batch = []
        for row in model.objects.only("pk", "dimensions").iterator(chunk_size=2000):
            row.dims_key = key(row.dimensions)
            batch.append(row)
            if len(batch) == 2000:
                model.objects.bulk_update(batch, ["dims_key"])
                batch = []
        model.objects.bulk_update(batch, ["dims_key"])


def forwards(apps: Any, schema_editor: Any) -> None:
    _rekey(apps, _digest)


def backwards(apps: Any, schema_editor: Any) -> None:
    _rekey(apps, _text)


class Migration(migrations.Migration):
    dependencies = [("metering", "0005_usage_event_identity")]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
