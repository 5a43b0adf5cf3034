"""One error model: domain errors declare stable codes, one handler maps them to HTTP, and the
OpenAPI schema lists every code (STYLE "One error model")."""

import ast
from pathlib import Path

import pytest
from django.test import Client
from drf_spectacular.generators import SchemaGenerator

from billing.deals.errors import DealError
from billing.invoicing.errors import InvoicingError
from config.errors import DOMAIN_STATUS, error_codes_by_status, exception_handler
from core.errors import DomainError, ErrorKind, domain_error_classes, domain_error_codes
from metering.services import AllocationConflict

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [
    path
    for app in ("tenancy", "metering", "billing", "audit", "portal", "web", "core", "config")
    for path in (ROOT / app).rglob("*.py")
    if "migrations" not in path.parts
]


def _raised_codes() -> list[tuple[str, str, str]]:
    """(class name, code, where) of every ``SomeError("code", ...)`` call in the sources."""
    # Classes whose first argument is the code (the others have a single code and take a message).
    classes = {
        cls.__name__ for cls in domain_error_classes() if cls.__init__ is DomainError.__init__
    }
    found = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in classes
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                found.append((node.func.id, node.args[0].value, where))
    return found


def test_every_code_raised_is_declared_by_its_class():
    classes = {cls.__name__: cls for cls in domain_error_classes()}
    raised = _raised_codes()
    undeclared = [(name, code, where) for name, code, where in raised
                  if code not in classes[name].codes]  # fmt: skip
    assert len(raised) > 20  # the scan sees the services
    assert undeclared == []


def test_a_code_means_one_kind_of_refusal_everywhere():
    kinds: dict[str, set[ErrorKind]] = {}
    for cls in domain_error_classes():
        for code, declared in cls.codes.items():
            kinds.setdefault(code, set()).add(declared.kind)
    assert {code: k for code, k in kinds.items() if len(k) > 1} == {}
    assert {cls.__name__ for cls in domain_error_classes()} >= {
        "InvoicingError", "DealError", "EconomicsError", "CatalogError", "RatingError",
        "AllocationConflict", "BadSignature", "PathError",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("error", "status", "body"),
    [
        (InvoicingError("invoice_status", "It is void."), 409,
         {"code": "invoice_status", "message": "It is void."}),
        (InvoicingError("no_lines", "Name a line."), 400,
         {"code": "no_lines", "message": "Name a line."}),
        (DealError("permission_denied", "Not yours."), 403,
         {"code": "permission_denied", "message": "Not yours."}),
        (DealError("validation_error", "Invalid.", {"lines.0.quantity": ["must be ≥ 1"]}), 400,
         {"code": "validation_error", "message": "Invalid.",
          "fields": {"lines.0.quantity": ["must be ≥ 1"]}}),
        (AllocationConflict("Overlaps."), 409,
         {"code": "allocation_conflict", "message": "Overlaps."}),
    ],
)  # fmt: skip
def test_the_handler_maps_each_kind_to_its_status(error, status, body):
    response = exception_handler(error, {})

    assert response is not None
    assert (response.status_code, response.data) == (status, body)


def test_an_undeclared_code_is_a_plain_400():
    assert DomainError("whatever", "No.").kind == ErrorKind.INVALID
    assert DOMAIN_STATUS[ErrorKind.INVALID] == 400


def test_the_schema_lists_every_code_in_the_shared_error_component():
    schema = SchemaGenerator().get_schema(request=None, public=True)

    component = schema["components"]["schemas"]["Error"]
    described = component["properties"]["code"]["description"]
    for status, codes in error_codes_by_status().items():
        for code in codes:
            assert f"`{code}` ({status})" in described
    assert set(domain_error_codes()) <= {c for codes in error_codes_by_status().values()
                                         for c in codes}  # fmt: skip
    void = schema["paths"]["/api/v1/invoices/{invoice_id}/void"]["post"]["responses"]
    assert void["409"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
    assert "`invoice_status`" in void["409"]["description"]
    assert "`allocation_conflict`" in void["409"]["description"]


@pytest.mark.django_db
def test_the_served_schema_has_the_error_component():
    response = Client().get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    assert "Error" in response.json()["components"]["schemas"]
