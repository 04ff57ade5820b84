"""API permissions: every endpoint and method, walked from the OpenAPI schema and the URL conf,
as a user of each role, a superuser and a user without permissions, by token and by session,
against the role table in docs/api.md; secrets only for callers who may change the row."""

import re
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import transaction
from drf_spectacular.generators import SchemaGenerator
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from conversions.models import ExchangeRate
from postbacks.models import Delivery
from postbacks.roles import MANAGERS, SERVICE, SUPPORT
from tests.factories import ConversionFactory, PostbackFactory
from tests.test_api_hardening import api_views

pytestmark = pytest.mark.django_db

SUPERUSER = "superuser"
NOBODY = "no permissions"
COLUMNS = (MANAGERS, SUPPORT, SERVICE, SUPERUSER, NOBODY)
EVERYONE = set(COLUMNS)
READERS = {MANAGERS, SUPPORT, SUPERUSER}
CONFIGURERS = {MANAGERS, SUPERUSER}

# (endpoints, methods) → (what it needs, who may). Mirrors the table in docs/api.md
# ("Permissions"); test_the_docs_table_is_this_table keeps the two equal.
ROLE_TABLE = {
    ("/api/v1/affiliates/ /api/v1/affiliates/{id}/", "GET HEAD OPTIONS"): (
        "affiliates.view_affiliate",
        READERS,
    ),
    ("/api/v1/affiliates/", "POST"): ("affiliates.add_affiliate", CONFIGURERS),
    ("/api/v1/affiliates/{id}/", "PUT PATCH"): ("affiliates.change_affiliate", CONFIGURERS),
    ("/api/v1/affiliates/{id}/", "DELETE"): ("affiliates.delete_affiliate", {SUPERUSER}),
    ("/api/v1/offers/ /api/v1/offers/{id}/", "GET HEAD OPTIONS"): (
        "affiliates.view_offer",
        READERS,
    ),
    ("/api/v1/offers/", "POST"): ("affiliates.add_offer", CONFIGURERS),
    ("/api/v1/offers/{id}/", "PUT PATCH"): ("affiliates.change_offer", CONFIGURERS),
    ("/api/v1/offers/{id}/", "DELETE"): ("affiliates.delete_offer", {SUPERUSER}),
    ("/api/v1/postbacks/ /api/v1/postbacks/{id}/", "GET HEAD OPTIONS"): (
        "postbacks.view_postback",
        READERS,
    ),
    ("/api/v1/postbacks/", "POST"): ("postbacks.add_postback", CONFIGURERS),
    ("/api/v1/postbacks/{id}/", "PUT PATCH"): ("postbacks.change_postback", CONFIGURERS),
    ("/api/v1/postbacks/{id}/", "DELETE"): ("postbacks.delete_postback", {SUPERUSER}),
    ("/api/v1/postbacks/assistant/", "POST OPTIONS"): ("postbacks.add_postback", CONFIGURERS),
    ("/api/v1/deliveries/ /api/v1/deliveries/{id}/", "GET HEAD OPTIONS"): (
        "postbacks.view_delivery",
        READERS,
    ),
    ("/api/v1/conversions/ /api/v1/conversions/{id}/", "GET HEAD OPTIONS"): (
        "conversions.view_conversion",
        READERS | {SERVICE},
    ),
    ("/api/v1/conversions/bulk/", "OPTIONS"): ("conversions.view_conversion", READERS | {SERVICE}),
    ("/api/v1/conversions/ /api/v1/conversions/bulk/", "POST"): (
        "conversions.add_conversion",
        {SERVICE, SUPERUSER},
    ),
    ("/api/v1/conversions/{id}/", "PATCH"): ("conversions.change_conversion", {SERVICE, SUPERUSER}),
    ("/api/v1/exchange-rates/", "GET HEAD OPTIONS"): (
        "conversions.view_exchangerate",
        READERS | {SERVICE},
    ),
    ("/api/v1/exchange-rates/", "POST"): (
        "conversions.add_exchangerate conversions.change_exchangerate",
        {MANAGERS, SERVICE, SUPERUSER},
    ),
    ("/api/v1/payout-rules/ /api/v1/payout-rules/{id}/", "GET HEAD OPTIONS"): (
        "conversions.view_payoutrule",
        READERS,
    ),
    ("/api/v1/payout-rules/", "POST"): ("conversions.add_payoutrule", CONFIGURERS),
    ("/api/v1/payout-rules/{id}/", "PUT PATCH"): ("conversions.change_payoutrule", CONFIGURERS),
    ("/api/v1/payout-rules/{id}/", "DELETE"): ("conversions.delete_payoutrule", {SUPERUSER}),
    ("/tracking/conversion/v1", "GET HEAD OPTIONS"): ("the offer's pixel secret", EVERYONE),
    ("/api/schema/ /api/docs/", "GET HEAD OPTIONS"): ("a token or login", EVERYONE),
}


def expected() -> dict[tuple[str, str], set[str]]:
    """(path, method) → the columns that may call it."""
    return {
        (path, method): allowed
        for (paths, methods), (_, allowed) in ROLE_TABLE.items()
        for path in paths.split()
        for method in methods.split()
    }


def walked() -> set[tuple[str, str]]:
    """Every (path, method) the project serves: the schema's operations, with HEAD wherever
    there is GET (Django adds it) and OPTIONS everywhere, and the API views the schema leaves
    out (the schema itself and Swagger UI)."""
    generator = SchemaGenerator()
    schema = generator.get_schema(request=None, public=True)
    pairs = set()
    for path, operations in schema["paths"].items():
        methods = {method.upper() for method in operations} | {"OPTIONS"}
        if "GET" in methods:
            methods.add("HEAD")
        pairs |= {(path, method) for method in methods}
    in_schema = {
        callback.cls for path, _, _, callback in generator.endpoints if path in schema["paths"]
    }
    for route, view in api_views():
        if view not in in_schema:
            path = "/" + route.replace("^", "").replace("$", "")
            pairs |= {(path, method) for method in ("GET", "HEAD", "OPTIONS")}
    return pairs


def test_the_table_covers_every_endpoint_and_method_and_nothing_else():
    assert set(expected()) == walked()


def test_the_docs_table_is_this_table():
    text = Path(__file__).resolve().parent.parent.joinpath("docs", "api.md").read_text()
    section = text.split("\n## Permissions\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `/")]
    documented = {}
    for row in rows:
        paths, methods, needs, *marks = (cell.strip() for cell in row.strip("|").split("|"))
        allowed = {column for column, mark in zip(COLUMNS, marks, strict=True) if mark == "yes"}
        key = (" ".join(re.findall(r"`([^`]+)`", paths)), methods.replace(",", ""))
        documented[key] = (" ".join(re.findall(r"`([^`]+)`", needs)) or needs, allowed)
    assert documented == ROLE_TABLE


@pytest.fixture
def rows():
    """One of each row a path names, and the offer's pixel secret."""
    conversion = ConversionFactory()
    postback = PostbackFactory(affiliate=conversion.affiliate)
    delivery = Delivery.objects.create(postback=postback, conversion=conversion, status="pending")
    ExchangeRate.objects.create(base="EUR", quote="USD", rate="1.1", valid_on="2026-01-02")
    return {
        "affiliates": conversion.affiliate.pk,
        "offers": conversion.offer.pk,
        "postbacks": postback.pk,
        "conversions": conversion.pk,
        "deliveries": delivery.pk,
        "pixel_secret": conversion.offer.pixel_secret,
    }


def user_of(column: str, django_user_model):
    if column == SUPERUSER:
        return django_user_model.objects.create_superuser("boss", password="pw")
    user = django_user_model.objects.create_user("caller", password="pw")
    if column != NOBODY:
        user.groups.add(Group.objects.get(name=column))
    return user


def client_for(user, auth: str) -> APIClient:
    client = APIClient()
    if auth == "token":
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    else:
        client.force_login(user)
    return client


def concrete(path: str, rows: dict) -> str:
    if path == "/tracking/conversion/v1":
        return f"{path}?token={rows['pixel_secret']}"
    resource = path.split("/")[3] if path.startswith("/api/v1/") else ""
    return path.replace("{id}", str(rows.get(resource)))


@pytest.mark.parametrize("auth", ["token", "session"])
@pytest.mark.parametrize("column", COLUMNS)
def test_each_caller_may_do_what_the_table_says(column, auth, rows, django_user_model):
    client = client_for(user_of(column, django_user_model), auth)
    wrong = []
    for (path, method), allowed in sorted(expected().items()):
        # Each call in a savepoint rolled back, so a DELETE leaves the rows for the next one.
        with transaction.atomic():
            response = client.generic(
                method, concrete(path, rows), "{}", content_type="application/json"
            )
            transaction.set_rollback(True)
        code = response.status_code
        if column in allowed and (code in (401, 403) or code >= 500):
            wrong.append(f"{method} {path}: {code}, expected to be let through")
        elif column not in allowed and code != 403:
            wrong.append(f"{method} {path}: {code}, expected 403")
    assert not wrong, "\n".join(wrong)


# --- secrets ----------------------------------------------------------------------------------


def token_user_with(django_user_model, *perms: str) -> APIClient:
    user = django_user_model.objects.create_user("limited")
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return client_for(user, "token")


def test_pixel_secret_is_left_out_for_callers_who_may_only_view_offers(django_user_model, rows):
    client = token_user_with(django_user_model, "affiliates.view_offer")
    listed = client.get("/api/v1/offers/").json()["results"][0]
    one = client.get(f"/api/v1/offers/{rows['offers']}/").json()
    assert "pixel_secret" not in listed and "pixel_secret" not in one
    assert one["name"]


def test_pixel_secret_is_shown_to_callers_who_may_change_offers(django_user_model, rows):
    client = token_user_with(django_user_model, "affiliates.view_offer", "affiliates.change_offer")
    one = client.get(f"/api/v1/offers/{rows['offers']}/").json()
    assert one["pixel_secret"] == rows["pixel_secret"]


def test_support_staff_see_offers_but_not_their_pixel_secrets(support_client, rows):
    body = support_client.get(f"/api/v1/offers/{rows['offers']}/").content.decode()
    assert rows["pixel_secret"] not in body


def test_managers_creating_an_offer_get_its_pixel_secret(manager_client):
    response = manager_client.post(
        "/api/v1/offers/",
        {"name": "New", "landing_page_url": "https://shop.example.com/"},
        content_type="application/json",
    )
    assert response.status_code == 201
    assert response.json()["pixel_secret"]


def test_postback_answers_never_carry_signing_secrets(django_user_model):
    """Not even to a superuser: the secret is shown once, in the admin, when it is made."""
    signed = PostbackFactory(signing_secret="whsec_live-secret")
    client = client_for(user_of(SUPERUSER, django_user_model), "token")
    for url in ("/api/v1/postbacks/", f"/api/v1/postbacks/{signed.pk}/"):
        response = client.get(url)
        assert response.status_code == 200
        assert "whsec_live-secret" not in response.content.decode()
