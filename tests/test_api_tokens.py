"""Service tokens in admin: issued for a new service user, shown once, rotated, revoked."""

import re

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def works(key: str) -> bool:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client.get("/api/v1/affiliates/").status_code == 200


def issue(admin_client, service="shop"):
    page = admin_client.post("/admin/authtoken/tokenproxy/add/", {"service": service})
    assert page.status_code == 200, page.content[:500]
    return page


def test_issuing_creates_a_passwordless_service_user_and_shows_a_working_key(admin_client):
    page = issue(admin_client)
    token = Token.objects.get(user__username="shop")
    assert token.key in page.content.decode()
    assert works(token.key)
    assert not token.user.has_usable_password()
    assert not token.user.is_staff


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


def test_second_token_for_the_same_service_is_refused(admin_client):
    issue(admin_client)
    page = admin_client.post("/admin/authtoken/tokenproxy/add/", {"service": "shop"})
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
