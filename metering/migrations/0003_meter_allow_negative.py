from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("metering", "0002_allocations")]

    operations = [
        migrations.AddField(
            model_name="meter",
            name="allow_negative",
            field=models.BooleanField(
                default=False,
                help_text="Accept negative values (e.g. corrections); refused otherwise.",
            ),
        ),
    ]
