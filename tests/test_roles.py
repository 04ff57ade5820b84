"""Roles: groups made by a migration, assigned by a command, enforced on real admin requests."""

import importlib
import io
from decimal import Decimal

import pytest
from django.conf import settings
from django.contrib import admin
from django.contrib.auth.models import Group, Permission
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse

from conversions.models import ExchangeRate
from postbacks import roles
from postbacks.models import Delivery, DeliveryState, EndpointHealth, Postback, TrackingSettings
from postbacks.roles import MANAGERS, ROLES, SERVICE, SUPPORT
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
    assert {"add_exchangerate", "change_exchangerate"} <= manager_perms
    assert not {"delete_exchangerate", "change_trackingsettings"} & manager_perms
    assert "retry_delivery" in support_perms
    assert {p for p in support_perms if not p.startswith("view_")} == {"retry_delivery"}


def test_the_conversion_api_role_writes_conversions_and_rates_and_nothing_else():
    perms = set(Group.objects.get(name=SERVICE).permissions.values_list("codename", flat=True))
    assert perms == {
        f"{action}_{model}"
        for action in ("view", "add", "change")
        for model in ("conversion", "exchangerate")
    }


API_ROLES = "0015_api_roles"


def run_api_roles_migration():
    migration = importlib.import_module(f"postbacks.migrations.{API_ROLES}")
    state = MigrationExecutor(connection).loader.project_state(("postbacks", API_ROLES))
    migration.add_service_role(state.apps, schema_editor=None)


def test_api_roles_migration_keeps_existing_service_tokens_recording_conversions(
    django_user_model,
):
    """Service users that held a token before the API checked permissions get the Conversion
    API role; staff, superusers, users already in a role and users without a token do not."""
    from rest_framework.authtoken.models import Token

    Group.objects.filter(name=SERVICE).delete()  # as on a database that ran 0014 only
    service = django_user_model.objects.create_user("shop")
    staff = django_user_model.objects.create_user("alice", is_staff=True)
    boss = django_user_model.objects.create_superuser("boss")
    configured = django_user_model.objects.create_user("ci")
    configured.groups.add(Group.objects.get(name=MANAGERS))
    for user in (service, staff, boss, configured):
        Token.objects.create(user=user)
    django_user_model.objects.create_user("no-token")

    run_api_roles_migration()

    members = set(Group.objects.get(name=SERVICE).user_set.values_list("username", flat=True))
    assert members == {"shop"}
    assert django_user_model.objects.get(username="shop").has_perm("conversions.add_conversion")


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


def test_managers_add_and_change_exchange_rates(manager_client):
    # A missing rate holds postbacks back; the managers who see that on the dashboard fix it.
    rate = ExchangeRate.objects.create(base="EUR", quote="USD", rate="1.1", valid_on="2026-01-02")
    url = f"/admin/conversions/exchangerate/{rate.pk}/change/"
    response = manager_client.post(
        url, {"base": "EUR", "quote": "USD", "rate": "9.9", "valid_on": "2026-01-02"}
    )
    assert response.status_code == 302
    rate.refresh_from_db()
    assert rate.rate == Decimal("9.9")
    response = manager_client.post(
        "/admin/conversions/exchangerate/add/",
        {"base": "EUR", "quote": "GBP", "rate": "0.85", "valid_on": "2026-01-02"},
    )
    assert response.status_code == 302
    assert ExchangeRate.objects.filter(quote="GBP").exists()
    delete = f"/admin/conversions/exchangerate/{rate.pk}/delete/"
    assert manager_client.post(delete, {"post": "yes"}).status_code == 403


def test_managers_cannot_change_the_tracking_settings(manager_client):
    settings_row = TrackingSettings.load()
    url = f"/admin/postbacks/trackingsettings/{settings_row.pk}/change/"
    response = manager_client.post(url, {"allow_revenue_parameters": "on"})
    assert response.status_code == 403
    assert TrackingSettings.load().allow_revenue_parameters is False


# Registered in the admin but deliberately outside both roles (superusers only), and why.
HIDDEN_FROM_ROLES = {
    "auth.user": "user accounts: whoever may see or change them can grant themselves anything",
    "auth.group": "the roles themselves: same reason as users",
    "authtoken.tokenproxy": "API tokens: the service keys that write conversions",
    "django_q.schedule": "the task queue's internals (schedules, results, queue rows)",
    "django_q.success": "the task queue's internals",
    "django_q.failure": "the task queue's internals",
    "django_q.ormq": "the task queue's internals",
    "axes.accessattempt": "login lockouts: usernames and client addresses of failed logins",
    "axes.accesslog": "login records: usernames and client addresses",
    "axes.accessfailurelog": "login failures: usernames and client addresses",
}


def registered_models() -> list[str]:
    return sorted(model._meta.label_lower for model in admin.site._registry)


def changelist(label: str) -> str:
    app_label, model_name = label.split(".")
    return reverse(f"admin:{app_label}_{model_name}_changelist")


# django-q2 registers its queue admin only with the ORM broker (no REDIS_URL).
ONLY_WITH_THE_ORM_BROKER = {"django_q.ormq"}


def test_hidden_models_are_still_registered():
    """A stale entry here would hide a newly registered model of the same name by accident."""
    missing = set(HIDDEN_FROM_ROLES) - set(registered_models())
    if settings.Q_CLUSTER.get("orm"):
        assert missing == set()
    else:
        assert missing == ONLY_WITH_THE_ORM_BROKER


@pytest.mark.parametrize(
    "label", [label for label in registered_models() if label not in HIDDEN_FROM_ROLES]
)
def test_support_staff_may_open_every_registered_changelist(support_client, label):
    """Every model in the admin, present and future, is visible to both roles (support staff
    have the smallest set: only views and retry). A new model fails here until it is added to
    roles.VIEW_ALL (with a migration re-syncing the groups) or, on purpose, to HIDDEN above."""
    # follow: the tracking settings list redirects to its single row
    response = support_client.get(changelist(label), follow=True)
    assert response.status_code == 200, f"{label}: add it to postbacks/roles.py VIEW_ALL"


@pytest.mark.parametrize(
    "label", sorted(label for label in HIDDEN_FROM_ROLES if label in registered_models())
)
def test_hidden_models_stay_hidden_from_support_staff(support_client, label):
    assert support_client.get(changelist(label)).status_code == 403


def test_both_roles_see_the_endpoint_health_list(support_client, manager_client):
    EndpointHealth.objects.create(host="down.example.net:443", consecutive_failures=3)
    for client in (support_client, manager_client):
        response = client.get("/admin/postbacks/endpointhealth/")
        assert response.status_code == 200
        assert "down.example.net:443" in response.content.decode()


RESYNC = "0011_roles_endpoint_health"


def test_resync_migration_gives_existing_groups_the_new_permissions():
    """A database that ran 0007_roles before Endpoint health joined VIEW_ALL gets it from 0011."""
    view_health = Permission.objects.get(codename="view_endpointhealth")
    for group in Group.objects.filter(name__in=ROLES):
        group.permissions.remove(view_health)
    migration = importlib.import_module(f"postbacks.migrations.{RESYNC}")
    state = MigrationExecutor(connection).loader.project_state(("postbacks", RESYNC))
    migration.resync_roles(state.apps, schema_editor=None)
    for name, perms in ROLES.items():
        group = Group.objects.get(name=name)
        have = {
            f"{app}.{codename}"
            for app, codename in group.permissions.values_list(
                "content_type__app_label", "codename"
            )
        }
        assert have == set(perms)
        if name in (MANAGERS, SUPPORT):
            assert "postbacks.view_endpointhealth" in have


def test_a_migration_sync_skips_permissions_of_models_that_come_later(monkeypatch):
    """An early roles migration runs with today's ROLES, which may name a model whose table a
    later migration creates: its permissions are skipped there, not a crash."""

    later = {roles.SUPPORT: ["postbacks.view_postback", "conversions.view_notyetamodel"]}
    monkeypatch.setattr(roles, "ROLES", later)

    roles.sync_roles(Group, Permission, missing_ok=True)

    perms = Group.objects.get(name=roles.SUPPORT).permissions.values_list("codename", flat=True)
    assert list(perms) == ["view_postback"]
