from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("metering", "0004_usage_event_namespace")]

    operations = [
        migrations.RemoveConstraint(model_name="usageevent", name="usage_event_dedup"),
        migrations.AddConstraint(
            model_name="usageevent",
            constraint=models.UniqueConstraint(
                fields=("namespace", "source", "event_id"), name="usage_event_identity"
            ),
        ),
    ]
