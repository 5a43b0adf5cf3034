from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("billing", "0009_invoice_receivables_void_balance")]

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
