from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("billing", "0008_merge_20261207_0355")]

    operations = [
        migrations.AddField(
            model_name="product",
            name="quantity",
            field=models.CharField(
                choices=[
                    ("hourly", "Hourly: Σ U(h), in unit-hours"),
                    ("period", "Period: the meter's aggregation over the whole period"),
                ],
                default="hourly",
                max_length=8,
            ),
        ),
    ]
