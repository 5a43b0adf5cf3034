from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("tenancy", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="org",
            name="billing_email",
            # A database default too: rows written by SQL that predates the column still load.
            field=models.EmailField(blank=True, db_default="", default="", max_length=254),
        ),
    ]
