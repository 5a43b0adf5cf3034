from typing import Any

from django.db import transaction
from django.forms import BaseInlineFormSet, Form
from django.http import HttpRequest

from tenancy.models import Org

from .services import audit_record


def _org_of(obj: Any) -> Org | None:
    if isinstance(obj, Org):
        return obj
    return getattr(obj, "org", None)


class AuditedAdmin:
    """For ModelAdmins of money-relevant models: every save and delete, with the values the
    form set (inline rows included), goes to the audit log in the same transaction."""

    def save_model(self, request: HttpRequest, obj: Any, form: Form, change: bool) -> None:
        with transaction.atomic():
            super().save_model(request, obj, form, change)  # type: ignore[misc]
            changes = {name: form.cleaned_data.get(name) for name in form.changed_data}
            audit_record(
                action=f"{obj._meta.model_name}.{'updated' if change else 'created'}",
                object_type=obj._meta.model_name,
                object_key=str(obj.pk),
                changes={k: str(v) if hasattr(v, "pk") else v for k, v in changes.items()},
                user=request.user,
                org=_org_of(obj),
            )

    def save_formset(
        self, request: HttpRequest, form: Form, formset: BaseInlineFormSet, change: bool
    ) -> None:
        super().save_formset(request, form, formset, change)  # type: ignore[misc]
        for inline_form in formset.forms:
            if inline_form.has_changed() and inline_form.instance.pk:
                audit_record(
                    action=f"{inline_form.instance._meta.model_name}.saved",
                    object_type=inline_form.instance._meta.model_name,
                    object_key=str(inline_form.instance.pk),
                    changes={
                        n: str(inline_form.cleaned_data.get(n)) for n in inline_form.changed_data
                    },
                    user=request.user,
                    org=_org_of(inline_form.instance),
                )

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        with transaction.atomic():
            audit_record(
                action=f"{obj._meta.model_name}.deleted",
                object_type=obj._meta.model_name,
                object_key=str(obj.pk),
                changes={"repr": str(obj)},
                user=request.user,
                org=_org_of(obj),
            )
            super().delete_model(request, obj)  # type: ignore[misc]
