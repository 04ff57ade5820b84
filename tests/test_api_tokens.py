"""Service tokens in admin: issued for a new service user with a role, shown once, rotated,
revoked."""

import re

import pytest
from django.contrib.auth.models import Group
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from postbacks.roles import MANAGERS, SERVICE

pytestmark = pytest.mark.django_db


def token_client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def works(key: str) -> bool:
    return token_client(key).get("/api/v1/conversions/").status_code == 200


def role_ids(*names) -> list[int]:
    return list(Group.objects.filter(name__in=names).values_list("pk", flat=True))


def issue(admin_client, service="shop", roles=(SERVICE,)):
    form = {"service": service, "roles": role_ids(*roles)}
    page = admin_client.post("/admin/authtoken/tokenproxy/add/", form)
    assert page.status_code == 200, page.content[:500]
    return page


def test_issuing_creates_a_passwordless_service_user_and_shows_a_working_key(admin_client):
    page = issue(admin_client)
    token = Token.objects.get(user__username="shop")
    assert token.key in page.content.decode()
    assert works(token.key)
    assert not token.user.has_usable_password()
    assert not token.user.is_staff
    assert list(token.user.groups.values_list("name", flat=True)) == [SERVICE]


def test_key_is_not_shown_again_in_the_list_or_the_token_page(admin_client):
    issue(admin_client)
    token = Token.objects.get(user__username="shop")
    listing = admin_client.get("/admin/authtoken/tokenproxy/").content.decode()
    detail = admin_client.get(f"/admin/authtoken/tokenproxy/{token.user_id}/change/").content
    assert token.key not in listing
    assert token.key[:4] + "…" in listing
    assert token.key not in detail.decode()


def test_admin_history_does_not_record_the_key(admin_client):
    from django.contrib.admin.models import LogEntry

    issue(admin_client)
    token = Token.objects.get(user__username="shop")
    admin_client.post(f"/admin/authtoken/tokenproxy/{token.user_id}/rotate/")
    new = Token.objects.get(user__username="shop")
    reprs = " ".join(LogEntry.objects.values_list("object_repr", flat=True))
    assert "API token of shop" in reprs
    assert token.key not in reprs and new.key not in reprs


def test_a_conversion_api_token_records_conversions_but_cannot_touch_configuration(
    admin_client,
):
    issue(admin_client)
    client = token_client(Token.objects.get(user__username="shop").key)
    assert client.post("/api/v1/conversions/", {}, format="json").status_code == 400
    assert client.get("/api/v1/offers/").status_code == 403
    assert client.post("/api/v1/postbacks/", {}, format="json").status_code == 403


def test_a_token_with_the_managers_role_may_also_configure(admin_client):
    issue(admin_client, roles=(SERVICE, MANAGERS))
    client = token_client(Token.objects.get(user__username="shop").key)
    assert client.get("/api/v1/offers/").status_code == 200
    assert client.post("/api/v1/postbacks/", {}, format="json").status_code == 400


def test_a_token_without_a_role_is_not_issued(admin_client):
    page = admin_client.post("/admin/authtoken/tokenproxy/add/", {"service": "shop"})
    assert "This field is required" in page.content.decode()
    assert not Token.objects.exists()


def test_second_token_for_the_same_service_is_refused(admin_client):
    issue(admin_client)
    form = {"service": "shop", "roles": role_ids(SERVICE)}
    page = admin_client.post("/admin/authtoken/tokenproxy/add/", form)
    assert "already has a token" in page.content.decode()
    assert Token.objects.filter(user__username="shop").count() == 1


def test_rotating_replaces_the_key_and_the_old_one_stops_working(admin_client):
    issue(admin_client)
    old = Token.objects.get(user__username="shop")
    page = admin_client.post(f"/admin/authtoken/tokenproxy/{old.user_id}/rotate/")
    new = Token.objects.get(user__username="shop")
    assert new.key != old.key
    assert new.key in page.content.decode()
    assert works(new.key) and not works(old.key)


def test_revoking_deletes_the_token(admin_client):
    issue(admin_client)
    token = Token.objects.get(user__username="shop")
    url = f"/admin/authtoken/tokenproxy/{token.user_id}/delete/"
    assert admin_client.post(url, {"post": "yes"}).status_code == 302
    assert not works(token.key)


def test_rotation_needs_a_post(admin_client):
    issue(admin_client)
    token = Token.objects.get(user__username="shop")
    page = admin_client.get(f"/admin/authtoken/tokenproxy/{token.user_id}/rotate/")
    assert page.status_code == 200
    assert Token.objects.get(user__username="shop").key == token.key
    assert re.search(rb"<form method=\"post\">", page.content)
