"""Roles: groups made by a migration, assigned by a command, enforced on real admin requests."""

import io
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command

from conversions.models import ExchangeRate
from postbacks.models import Delivery, DeliveryState, Postback, TrackingSettings
from postbacks.roles import MANAGERS, SUPPORT
from tests.factories import AffiliateFactory, ConversionFactory, PostbackFactory, conversion_type

pytestmark = pytest.mark.django_db


def postback_form(postback_or_affiliate, **changes) -> dict:
    affiliate = getattr(postback_or_affiliate, "affiliate", postback_or_affiliate)
    data = {
        "name": "Form postback",
        "affiliate": affiliate.pk,
        "active": "on",
        "scope": "global",
        "conversion_types": [conversion_type("sale").pk],
        "statuses": ["approved"],
        "currency": "",
        "method": "GET",
        "url": "https://tracker.example.com/pb?clickid={affS1}",
        "body_format": "form",
        "body_template": "",
        "status_map": "{}",
    }
    return {**data, **changes}


def test_migration_creates_both_groups_with_their_permissions():
    managers = Group.objects.get(name=MANAGERS)
    support = Group.objects.get(name=SUPPORT)
    manager_perms = set(managers.permissions.values_list("codename", flat=True))
    support_perms = set(support.permissions.values_list("codename", flat=True))
    assert {"change_postback", "add_affiliate", "send_test_postback"} <= manager_perms
    assert not {"change_exchangerate", "change_trackingsettings"} & manager_perms
    assert "retry_delivery" in support_perms
    assert {p for p in support_perms if not p.startswith("view_")} == {"retry_delivery"}


def test_assign_role_puts_a_user_in_the_group_and_makes_them_staff(django_user_model):
    user = django_user_model.objects.create_user("alice")
    out = io.StringIO()
    call_command("assign_role", "alice", "support", stdout=out)
    call_command("assign_role", "alice", "managers", "--only", stdout=out)
    user.refresh_from_db()
    assert user.is_staff
    assert list(user.groups.values_list("name", flat=True)) == [MANAGERS]
    assert user.has_perm("postbacks.send_test_postback")


def test_assign_role_to_an_unknown_user_is_a_clear_error():
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        call_command("assign_role", "nobody", "managers")


def test_support_staff_may_view_but_not_change_a_postback(support_client):
    postback = PostbackFactory()
    url = f"/admin/postbacks/postback/{postback.pk}/change/"
    assert support_client.get(url).status_code == 200
    response = support_client.post(url, postback_form(postback, name="Renamed"))
    assert response.status_code == 403
    assert Postback.objects.get(pk=postback.pk).name == postback.name


def test_support_staff_cannot_send_tests_or_add_affiliates(support_client):
    postback = PostbackFactory()
    assert (
        support_client.post(f"/admin/postbacks/postback/{postback.pk}/test-send/").status_code
        == 403
    )
    assert support_client.post("/admin/affiliates/affiliate/add/", {"name": "X"}).status_code == 403


def test_support_staff_may_retry_a_failed_delivery(support_client, broker_calls):
    conversion = ConversionFactory()
    postback = PostbackFactory(affiliate=conversion.affiliate)
    failed = Delivery.objects.create(
        postback=postback, conversion=conversion, status="approved", state=DeliveryState.FAILED
    )
    response = support_client.post(
        "/admin/postbacks/delivery/",
        {"action": "retry_now", "_selected_action": [failed.pk]},
    )
    assert response.status_code == 302
    failed.refresh_from_db()
    assert failed.state == DeliveryState.RETRYING


def test_managers_add_postbacks_through_the_form(manager_client):
    affiliate = AffiliateFactory()
    response = manager_client.post("/admin/postbacks/postback/add/", postback_form(affiliate))
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Postback.objects.get(name="Form postback").affiliate == affiliate


def test_managers_cannot_edit_exchange_rates(manager_client):
    rate = ExchangeRate.objects.create(base="EUR", quote="USD", rate="1.1", valid_on="2026-01-02")
    url = f"/admin/conversions/exchangerate/{rate.pk}/change/"
    response = manager_client.post(
        url, {"base": "EUR", "quote": "USD", "rate": "9.9", "valid_on": "2026-01-02"}
    )
    assert response.status_code == 403
    rate.refresh_from_db()
    assert rate.rate == Decimal("1.1")
    assert manager_client.post("/admin/conversions/exchangerate/add/").status_code == 403


def test_managers_cannot_change_the_tracking_settings(manager_client):
    settings_row = TrackingSettings.load()
    url = f"/admin/postbacks/trackingsettings/{settings_row.pk}/change/"
    response = manager_client.post(url, {"allow_revenue_parameters": "on"})
    assert response.status_code == 403
    assert TrackingSettings.load().allow_revenue_parameters is False
