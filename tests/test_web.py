import pytest
from django.test import Client

from tenancy.models import Membership
from tenancy.services import staff_user_create

from .factories import MembershipFactory, UserFactory


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_login_page_renders(db):
    response = Client().get("/accounts/login/")

    assert response.status_code == 200
    assert b"Log in to Tessera" in response.content


def test_anonymous_home_goes_to_login(db):
    response = Client().get("/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize(
    ("role", "target"),
    [("finance", "/finance/"), ("account_manager", "/deals/"), ("operator", "/admin/")],
)
def test_staff_land_in_their_console(db, role, target):
    response = login(staff_user_create(username=role, role=role)).get("/")

    assert response["Location"] == target


def test_customers_land_in_the_portal(org):
    member = MembershipFactory.create(org=org, role=Membership.Role.OWNER).user

    assert login(member).get("/")["Location"] == "/portal/"


def test_a_user_without_org_or_role_is_told_so(db):
    response = login(UserFactory.create()).get("/")

    assert response.status_code == 403


def test_charts_are_inline_svg_without_scripts():
    from decimal import Decimal

    from web.charts import stacked_bars

    svg = stacked_bars(title="Usage", labels=["a", "b"], series={"H100": [Decimal(1), Decimal(2)]})

    assert svg.startswith("<svg")
    assert "src=" not in svg  # pygal's inline config only; nothing is fetched
    assert 'xlink:href="http' not in svg
