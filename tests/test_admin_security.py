"""Admin security: login lockout (django-axes), production settings, delete of referred rows."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from postbacks.models import Delivery

from .factories import ConversionFactory, PostbackFactory

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_superuser("boss", password="right-horse-battery")


def login(client, password, ip="203.0.113.7", username="boss"):
    return client.post(
        "/admin/login/?next=/admin/",
        {"username": username, "password": password},
        REMOTE_ADDR=ip,
    )


def test_admin_login_works_with_the_right_password(client, staff):
    assert login(client, "right-horse-battery").status_code == 302


def test_five_wrong_passwords_lock_that_username_from_that_address(client, staff, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        login(client, "wrong")
    response = login(client, "right-horse-battery")
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


def test_lockout_is_per_username_and_address(client, staff, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        login(client, "wrong")
    assert login(client, "right-horse-battery", ip="198.51.100.9").status_code == 302


def test_a_successful_login_resets_the_failure_count(client, staff, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        login(client, "wrong")
    assert login(client, "right-horse-battery").status_code == 302
    client.logout()
    login(client, "wrong")
    assert login(client, "right-horse-battery").status_code == 302


def test_force_login_still_works_for_tests(client, staff):
    client.force_login(staff)
    assert client.get("/admin/").status_code == 200


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "PYTEST", "SECURE_", "SESSION_", "CSRF_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="trackdesk.settings",
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="postbacks.example.com",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "DEBUG"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_settings_turn_on_https_protections():
    """The same settings as the check above, read in a child process: what each one is."""
    code = (
        "from django.conf import settings as s; print(s.SECURE_SSL_REDIRECT, "
        "s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS, "
        "s.SECURE_PROXY_SSL_HEADER, s.TRUSTED_PROXY_COUNT)"
    )
    env = {**os.environ, "DEBUG": "false", "SECRET_KEY": secrets.token_urlsafe(50)}
    for name in ("SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "BEHIND_HTTPS_PROXY"):
        env.pop(name, None)
    result = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "trackdesk.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.split() == [
        "True",
        "True",
        "True",
        "31536000",
        "('HTTP_X_FORWARDED_PROTO',",
        "'https')",
        "1",
    ], result.stderr


def test_admin_delete_of_a_postback_with_deliveries_is_refused_with_advice(client, staff):
    postback = PostbackFactory()
    Delivery.objects.create(postback=postback, conversion=ConversionFactory(), status="approved")
    client.force_login(staff)
    url = f"/admin/postbacks/postback/{postback.pk}/delete/"
    page = client.get(url)
    assert page.status_code == 200
    assert b"Cannot delete postback" in page.content
    assert b"Deactivate it instead" in page.content
    assert client.post(url, {"post": "yes"}).status_code == 200  # the same refusal, not a 500
    assert Delivery.objects.filter(postback=postback).exists()


def test_admin_bulk_delete_of_an_affiliate_with_postbacks_is_refused(client, staff):
    postback = PostbackFactory()
    client.force_login(staff)
    response = client.post(
        "/admin/affiliates/affiliate/",
        {"action": "delete_selected", "_selected_action": [postback.affiliate.pk], "post": "yes"},
    )
    assert response.status_code == 200
    assert b"Deactivate it instead" in response.content
    assert postback.affiliate.__class__.objects.filter(pk=postback.affiliate.pk).exists()
