"""Issuers' legal details, the invoice's frozen legal-details snapshot and VAT in national
currency (art. 230 Directive 2006/112/EC), ECB reference rates, the OSS and out-of-scope tax
reasons, the Stripe payment link and credit-note sync (issue 14).

PostgreSQL's immutability trigger (0004) compares whole rows, so the new invoice columns are
frozen at finalization with no change. SQLite lists the columns, and adding a column remakes
the table: its triggers (and those of the tables that read it) are dropped first and created
again after, the invoice's with the longer list.
"""

import importlib

import django.db.models.deletion
from django.db import migrations, models

final_adjustment = importlib.import_module("billing.migrations.0007_invoice_final_adjustment")
receivables = importlib.import_module("billing.migrations.0009_invoice_receivables_void_balance")

# The invoice's frozen columns now (a test checks this list against the model).
INVOICE_FROZEN_COLUMNS = (
    *receivables.INVOICE_FROZEN_COLUMNS,
    "customer_email",
    "issuer_details", "tax_currency", "tax_fx_rate", "tax_fx_date", "tax_total_national",
)  # fmt: skip


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0011_alerts"),
        ("tenancy", "0002_org_billing_email"),
    ]

    operations = [
        migrations.RunPython(
            final_adjustment.drop_sqlite_triggers,
            final_adjustment.create_sqlite_triggers(receivables.INVOICE_FROZEN_COLUMNS),
            elidable=False,
        ),
        migrations.AddField(
            model_name="invoice",
            name="customer_email",
            field=models.EmailField(
                blank=True, help_text="BT-49 on the e-invoice.", max_length=254
            ),
        ),
        migrations.AddField(
            model_name="invoice",
            name="issuer_details",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AddField(
            model_name="invoice",
            name="tax_currency",
            field=models.CharField(blank=True, help_text="ISO 4217 (BT-6).", max_length=3),
        ),
        migrations.AddField(
            model_name="invoice",
            name="tax_fx_date",
            field=models.DateField(blank=True, help_text="The ECB rate's date.", null=True),
        ),
        migrations.AddField(
            model_name="invoice",
            name="tax_fx_rate",
            field=models.DecimalField(
                blank=True,
                decimal_places=10,
                help_text="Units of the invoice currency for 1 unit of tax_currency.",
                max_digits=24,
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="invoice",
            name="tax_total_national",
            field=models.DecimalField(
                blank=True,
                decimal_places=4,
                help_text="tax_total in tax_currency, rounded to its minor unit (BT-111).",
                max_digits=20,
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="issuer",
            name="bic",
            field=models.CharField(blank=True, max_length=11),
        ),
        migrations.AddField(
            model_name="issuer",
            name="contact_email",
            field=models.EmailField(blank=True, max_length=254),
        ),
        migrations.AddField(
            model_name="issuer",
            name="contact_name",
            field=models.CharField(blank=True, max_length=100),
        ),
        migrations.AddField(
            model_name="issuer",
            name="contact_phone",
            field=models.CharField(blank=True, max_length=32),
        ),
        migrations.AddField(
            model_name="issuer",
            name="early_payment_discount",
            field=models.CharField(
                blank=True, help_text="Empty: 'No discount for early payment.'", max_length=200
            ),
        ),
        migrations.AddField(
            model_name="issuer",
            name="iban",
            field=models.CharField(blank=True, help_text="Compacted, checked.", max_length=34),
        ),
        migrations.AddField(
            model_name="issuer",
            name="late_payment_rate",
            field=models.CharField(
                blank=True,
                help_text="France: the late-payment penalty rate, as printed.",
                max_length=200,
            ),
        ),
        migrations.AddField(
            model_name="issuer",
            name="legal_form",
            field=models.CharField(blank=True, help_text="SAS, GmbH, Inc.", max_length=64),
        ),
        migrations.AddField(
            model_name="issuer",
            name="managing_directors",
            field=models.CharField(
                blank=True, help_text="Germany: Geschäftsführer, comma-separated.", max_length=300
            ),
        ),
        migrations.AddField(
            model_name="issuer",
            name="payment_terms_text",
            field=models.CharField(blank=True, max_length=300),
        ),
        migrations.AddField(
            model_name="issuer",
            name="rcs_city",
            field=models.CharField(blank=True, help_text="France: RCS city.", max_length=100),
        ),
        migrations.AddField(
            model_name="issuer",
            name="register_court",
            field=models.CharField(
                blank=True, help_text="Germany: Registergericht (Amtsgericht ...).", max_length=100
            ),
        ),
        migrations.AddField(
            model_name="issuer",
            name="register_number",
            field=models.CharField(
                blank=True, help_text="Germany: HRB 123456 (Handelsregister).", max_length=32
            ),
        ),
        migrations.AddField(
            model_name="issuer",
            name="share_capital",
            field=models.DecimalField(
                blank=True,
                decimal_places=2,
                help_text="In the issuer's national currency.",
                max_digits=20,
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="issuer",
            name="siren",
            field=models.CharField(blank=True, help_text="France: SIREN (9 digits).", max_length=9),
        ),
        migrations.AddField(
            model_name="stripeinvoicesync",
            name="hosted_invoice_url",
            field=models.URLField(blank=True, max_length=500),
        ),
        migrations.AlterField(
            model_name="creditnotetax",
            name="reason",
            field=models.CharField(
                choices=[
                    ("domestic_vat", "VAT"),
                    ("reverse_charge", "EU reverse charge"),
                    ("oss", "VAT of the customer's country (One-Stop Shop)"),
                    ("export", "Export outside the EU"),
                    ("out_of_scope", "Out of scope of VAT"),
                ],
                max_length=16,
            ),
        ),
        migrations.AlterField(
            model_name="invoicetax",
            name="reason",
            field=models.CharField(
                choices=[
                    ("domestic_vat", "VAT"),
                    ("reverse_charge", "EU reverse charge"),
                    ("oss", "VAT of the customer's country (One-Stop Shop)"),
                    ("export", "Export outside the EU"),
                    ("out_of_scope", "Out of scope of VAT"),
                ],
                max_length=16,
            ),
        ),
        migrations.CreateModel(
            name="FxRate",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("date", models.DateField()),
                ("currency", models.CharField(help_text="ISO 4217, never EUR.", max_length=3)),
                (
                    "rate",
                    models.DecimalField(
                        decimal_places=8,
                        help_text="Units of currency for 1 EUR (ECB quote).",
                        max_digits=20,
                    ),
                ),
                (
                    "source",
                    models.CharField(
                        blank=True, help_text="The file it came from.", max_length=200
                    ),
                ),
                ("loaded_at", models.DateTimeField(auto_now=True)),
            ],
            options={
                "ordering": ["currency", "date"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("currency", "date"), name="fx_rate_currency_date"
                    ),
                    models.CheckConstraint(
                        condition=models.Q(("rate__gt", 0)), name="fx_rate_positive"
                    ),
                ],
            },
        ),
        migrations.RunPython(
            final_adjustment.create_sqlite_triggers(INVOICE_FROZEN_COLUMNS),
            final_adjustment.drop_sqlite_triggers,
            elidable=False,
        ),
        migrations.CreateModel(
            name="StripeCreditNoteSync",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "state",
                    models.CharField(
                        choices=[
                            ("pending", "Pending"),
                            ("done", "Done"),
                            ("failed", "Failed (will be retried)"),
                        ],
                        default="pending",
                        max_length=16,
                    ),
                ),
                ("stripe_credit_note_id", models.CharField(blank=True, max_length=64)),
                ("attempts", models.PositiveIntegerField(default=0)),
                ("last_error", models.TextField(blank=True)),
                ("locked_until", models.DateTimeField(blank=True, null=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "credit_note",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="stripe_sync",
                        to="billing.creditnote",
                    ),
                ),
                (
                    "org",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="tenancy.org",
                    ),
                ),
            ],
            options={
                "indexes": [models.Index(fields=["state"], name="stripe_cn_sync_state")],
                "constraints": [
                    models.UniqueConstraint(
                        condition=models.Q(("stripe_credit_note_id", ""), _negated=True),
                        fields=("stripe_credit_note_id",),
                        name="stripe_cn_sync_id_unique",
                    )
                ],
            },
        ),
    ]
