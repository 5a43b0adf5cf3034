"""The deal form, its lines (each with ramp steps as rows of date and GPUs) and its
on-demand terms. Choices show names, not keys; the org's currency and running contract
narrow the rate cards and contracts offered (``data-`` attributes the page's script reads)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django import forms

from tenancy.models import Org

from ..models import Contract, Issuer, Product
from . import access, selectors
from .models import Deal
from .terms import LineInput, TermInput, contract_span

RAMP_STEPS = 3  # ramp rows under each line; more steps: save, and the edit form adds rows


class _Choice(forms.Select):
    """A select whose options carry ``data-`` attributes from ``option_data``."""

    option_data: dict[str, dict[str, str]]

    def create_option(self, name: str, value: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        option = super().create_option(name, value, *args, **kwargs)
        key = str(getattr(value, "value", value))
        for attr, text in getattr(self, "option_data", {}).get(key, {}).items():
            option["attrs"][f"data-{attr}"] = text
        return option


if TYPE_CHECKING:
    _ModelChoice = forms.ModelChoiceField[Any]
else:
    _ModelChoice = forms.ModelChoiceField


class OrgChoice(_ModelChoice):
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.name} ({obj.currency})"


class ContractChoice(_ModelChoice):
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.key} · {contract_span(obj)}"


class IssuerChoice(_ModelChoice):
    def label_from_instance(self, obj: Any) -> str:
        return str(obj.legal_name)


class ProductChoice(_ModelChoice):
    def label_from_instance(self, obj: Any) -> str:
        return str(obj.name)


class DealForm(forms.Form):
    org = OrgChoice(queryset=Org.objects.none(), empty_label=None, widget=_Choice)
    amends = ContractChoice(
        queryset=Contract.objects.none(),
        required=False,
        empty_label="— a new contract",
        widget=_Choice,
        label="Amends",
        help_text="The org's running contract: the deal adds its lines to it from their dates.",
    )
    title = forms.CharField(max_length=200, required=False)
    rate_card = forms.ChoiceField(
        help_text="Its prices are the list prices; in the org's currency.", widget=_Choice
    )
    issuer = IssuerChoice(queryset=Issuer.objects.all(), empty_label=None)

    def __init__(self, *args: Any, user: Any, deal: Deal | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        orgs = access.draftable_orgs(user).order_by("name")
        org_field: Any = self.fields["org"]
        org_field.queryset = orgs
        org_field.widget.option_data = {str(o.pk): {"currency": o.currency} for o in orgs}
        if deal is not None:
            org_field.disabled = True
        contracts = Contract.objects.filter(org__in=orgs).order_by("org_id", "start")
        contract_field: Any = self.fields["amends"]
        contract_field.queryset = contracts
        contract_field.widget.option_data = {
            str(c.pk): {"org": str(c.org_id), "rate-card": c.rate_card_key} for c in contracts
        }
        cards = selectors.rate_card_choices()
        card_field: Any = self.fields["rate_card"]
        card_field.choices = [(key, f"{name} ({currency})") for key, name, currency in cards]
        card_field.widget.option_data = {key: {"currency": currency} for key, _, currency in cards}
        if deal is None and not self.is_bound:
            org = orgs.first()
            running = selectors.running_contract(org=org) if org else None
            self.initial.setdefault("org", org)
            self.initial.setdefault("amends", running)
            if running is not None:
                self.initial.setdefault("rate_card", running.rate_card_key)
            elif org is not None:
                same = [key for key, _, currency in cards if currency == org.currency]
                if same:
                    self.initial.setdefault("rate_card", same[0])

    def currency(self) -> str:
        cards = {key: currency for key, _, currency in selectors.rate_card_choices()}
        return cards[self.cleaned_data["rate_card"]]


class LineForm(forms.Form):
    product = ProductChoice(queryset=Product.objects.none(), empty_label="— choose GPUs")
    quantity = forms.IntegerField(min_value=1, label="GPUs")
    start = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    term_months = forms.IntegerField(min_value=1, max_value=120, label="Months")
    unit_price = forms.DecimalField(
        min_value=0, max_digits=28, decimal_places=12, label="Price / GPU-h"
    )
    burst_unit_price = forms.DecimalField(
        min_value=0, max_digits=28, decimal_places=12, required=False, label="Burst / GPU-h"
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field: Any = self.fields["product"]
        field.queryset = selectors.gpu_products().order_by("name")
        steps = len(self.initial.get("ramp", [])) + 1
        if self.is_bound:  # as many rows as the page sent
            steps = 0
            while self.add_prefix(f"ramp_{steps}_from") in self.data:
                steps += 1
        steps = max(RAMP_STEPS, steps)
        for i in range(steps):
            self.fields[f"ramp_{i}_from"] = forms.DateField(
                required=False,
                label=f"Step {i + 1} from",
                widget=forms.DateInput(attrs={"type": "date"}),
            )
            self.fields[f"ramp_{i}_quantity"] = forms.IntegerField(
                required=False, min_value=0, label=f"Step {i + 1} GPUs"
            )
        for i, step in enumerate(self.initial.get("ramp", [])):
            self.initial[f"ramp_{i}_from"] = step["from"]
            self.initial[f"ramp_{i}_quantity"] = step["quantity"]
        self.ramp_steps = steps

    def ramp_rows(self) -> list[tuple[forms.BoundField, forms.BoundField]]:
        return [
            (self[f"ramp_{i}_from"], self[f"ramp_{i}_quantity"]) for i in range(self.ramp_steps)
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        steps = []
        for i in range(self.ramp_steps):
            day, quantity = data.get(f"ramp_{i}_from"), data.get(f"ramp_{i}_quantity")
            if day is None and quantity is None:
                continue
            if day is None or quantity is None:
                self.add_error(f"ramp_{i}_from", "A ramp step needs both a date and GPUs.")
                continue
            steps.append({"from": day, "quantity": quantity})
        data["ramp"] = sorted(steps, key=lambda s: s["from"])
        return data

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


class TermForm(forms.Form):
    """One on-demand term: a discount off list, or a custom price, from a date."""

    KINDS = [("discount", "% off list"), ("price", "custom price / unit")]

    product = ProductChoice(
        queryset=Product.objects.none(), required=False, empty_label="— every product"
    )
    kind = forms.ChoiceField(choices=KINDS, initial="discount")
    value = forms.DecimalField(min_value=0, max_digits=28, decimal_places=12)
    valid_from = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date"}))
    valid_until = forms.DateField(
        label="Until (exclusive)",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field: Any = self.fields["product"]
        field.queryset = Product.objects.order_by("name")

    def term(self) -> TermInput:
        data = self.cleaned_data
        value: Decimal = data["value"]
        discount = data["kind"] == "discount"
        return TermInput(
            product=data.get("product"),
            valid_from=data["valid_from"],
            valid_until=data.get("valid_until"),
            discount_percent=value if discount else None,
            unit_price=None if discount else value,
        )


LineFormSet = forms.formset_factory(
    LineForm, extra=1, can_delete=True, min_num=1, validate_min=True
)
TermFormSet = forms.formset_factory(TermForm, extra=1, can_delete=True)


def line_initial(deal: Deal) -> list[dict[str, Any]]:
    return [
        {
            "product": line.product,
            "quantity": line.quantity,
            "start": line.start,
            "term_months": line.term_months,
            "unit_price": line.unit_price.normalize(),
            "burst_unit_price": line.burst_unit_price.normalize()
            if line.burst_unit_price is not None
            else None,
            "ramp": [
                {"from": date.fromisoformat(str(s["from"])), "quantity": s["quantity"]}
                for s in line.ramp
            ],
        }
        for line in deal.lines.select_related("product")
    ]


def term_initial(deal: Deal) -> list[dict[str, Any]]:
    return [
        {
            "product": term.product,
            "kind": "discount" if term.unit_price is None else "price",
            "value": (term.discount_percent if term.unit_price is None else term.unit_price)
            or Decimal(0),
            "valid_from": term.valid_from,
            "valid_until": term.valid_until,
        }
        for term in deal.terms.select_related("product")
    ]
