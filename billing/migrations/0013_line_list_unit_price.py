"""The list (gross) unit price of a discounted rated charge and invoice line (issue 14:
discounts shown as such; EN 16931 BT-148 "Item gross price"); ``unit_price`` stays the net
price (BT-146), so quantity × unit price = amount as before.

Existing rows keep a null list price: their discount stays stated in their description only.
PostgreSQL adds the nullable column without touching rows, so the immutability triggers
(0004) see no change. SQLite rebuilds ``billing_invoiceline`` to add it, which drops its
triggers: all of 0004's are dropped first and created again after, with 0012's columns.
"""

import importlib

from django.db import migrations, models

final_adjustment = importlib.import_module("billing.migrations.0007_invoice_final_adjustment")
legal = importlib.import_module("billing.migrations.0012_einvoicing_legal_details_fx")

LIST_PRICE_HELP = "Price before the contract's percent discount (EN 16931 BT-148, item gross price"
NET_PRICE_HELP = "Net price, after any discount (BT-146)."


class Migration(migrations.Migration):
    dependencies = [("billing", "0012_einvoicing_legal_details_fx")]

    operations = [
        migrations.RunPython(
            final_adjustment.drop_sqlite_triggers,
            final_adjustment.create_sqlite_triggers(legal.INVOICE_FROZEN_COLUMNS),
            elidable=False,
        ),
        migrations.AddField(
            model_name="invoiceline",
            name="list_unit_price",
            field=models.DecimalField(
                blank=True,
                decimal_places=12,
                help_text=f"{LIST_PRICE_HELP}; the discount per unit, BT-147, is it less "
                "unit_price); null when not discounted.",
                max_digits=28,
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="ratedcharge",
            name="list_unit_price",
            field=models.DecimalField(
                blank=True,
                decimal_places=12,
                help_text=f"{LIST_PRICE_HELP}); null when not discounted (list price, custom "
                "price, reservation).",
                max_digits=28,
                null=True,
            ),
        ),
        *(
            migrations.AlterField(
                model_name=model,
                name="unit_price",
                field=models.DecimalField(
                    decimal_places=12, help_text=NET_PRICE_HELP, max_digits=28
                ),
            )
            for model in ("invoiceline", "ratedcharge")
        ),
        migrations.RunPython(
            final_adjustment.create_sqlite_triggers(legal.INVOICE_FROZEN_COLUMNS),
            final_adjustment.drop_sqlite_triggers,
            elidable=False,
        ),
    ]
