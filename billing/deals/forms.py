"""The deal form and its lines formset. Ramp steps are typed as ``2027-02-01:16, ...``."""

from __future__ import annotations

from datetime import date
from typing import Any

from django import forms

from tenancy.models import Org

from ..models import Issuer, Product
from . import access, selectors
from .models import Deal
from .terms import LineInput


class DealForm(forms.Form):
    org: forms.ModelChoiceField[Any] = forms.ModelChoiceField(
        queryset=Org.objects.none(), empty_label=None
    )
    title = forms.CharField(max_length=200, required=False)
    rate_card = forms.ChoiceField(help_text="Its prices are the list prices; sets the currency.")
    issuer = forms.ModelChoiceField(queryset=Issuer.objects.all(), empty_label=None)

    def __init__(self, *args: Any, user: Any, deal: Deal | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field: Any = self.fields["org"]
        field.queryset = access.draftable_orgs(user)
        if deal is not None:
            field.disabled = True
        self.fields["rate_card"].choices = [  # type: ignore[attr-defined]
            (key, f"{key} ({currency})") for key, currency in selectors.rate_card_choices()
        ]

    def currency(self) -> str:
        cards = dict(selectors.rate_card_choices())
        return cards[self.cleaned_data["rate_card"]]


class LineForm(forms.Form):
    product: forms.ModelChoiceField[Any] = forms.ModelChoiceField(queryset=Product.objects.none())
    quantity = forms.IntegerField(min_value=1, label="GPUs")
    start = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    term_months = forms.IntegerField(min_value=1, max_value=120, label="Months")
    unit_price = forms.DecimalField(
        min_value=0, max_digits=28, decimal_places=12, label="Price / GPU-h"
    )
    burst_unit_price = forms.DecimalField(
        min_value=0, max_digits=28, decimal_places=12, required=False, label="Burst / GPU-h"
    )
    ramp = forms.CharField(
        required=False,
        label="Ramp (date:GPUs, …)",
        widget=forms.TextInput(attrs={"placeholder": "2027-02-01:16"}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field: Any = self.fields["product"]
        field.queryset = selectors.gpu_products()

    def clean_ramp(self) -> list[dict[str, Any]]:
        steps = []
        for part in filter(None, (p.strip() for p in self.cleaned_data["ramp"].split(","))):
            day, _, quantity = part.partition(":")
            try:
                steps.append({"from": date.fromisoformat(day.strip()), "quantity": int(quantity)})
            except ValueError:
                raise forms.ValidationError(
                    f"{part!r}: write each step as YYYY-MM-DD:GPUs"
                ) from None
        return steps

    def line(self) -> LineInput:
        data = self.cleaned_data
        return LineInput(
            product=data["product"],
            quantity=data["quantity"],
            start=data["start"],
            term_months=data["term_months"],
            unit_price=data["unit_price"],
            burst_unit_price=data.get("burst_unit_price"),
            ramp=data["ramp"],
        )


LineFormSet = forms.formset_factory(
    LineForm, extra=2, can_delete=True, min_num=1, validate_min=True
)


def ramp_text(ramp: list[dict[str, Any]]) -> str:
    return ", ".join(f"{step['from']}:{step['quantity']}" for step in ramp)
