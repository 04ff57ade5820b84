"""Alerts: a paused postback or an endpoint that keeps failing is e-mailed to the affiliate's
manager and the Affiliate managers group, once, and shown on the admin index until acknowledged."""

import io
import logging
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.core import mail
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule

from postbacks import alerts
from postbacks.delivery import breaker
from postbacks.delivery.single import attempt_delivery
from postbacks.delivery.tasks import check_alerts
from postbacks.models import Alert, AlertKind, Delivery, EndpointHealth, Postback
from postbacks.roles import MANAGERS
from postbacks.transport.policy import HttpResult
from tests.factories import AffiliateFactory, ConversionFactory, PostbackFactory

pytestmark = pytest.mark.django_db

HOST = "down.example.com:443"
DOWN = "https://down.example.com/pb?c={affS1}&token=SECRET123"
ERROR = "HTTP 500 from https://down.example.com/pb?c=1&token=SECRET123"


@pytest.fixture
def down(monkeypatch, settings):
    """Every request to down.example.com fails; auto-pause after 5 days of failures."""
    settings.POSTBACK_AUTO_PAUSE_AFTER = 5
    settings.SITE_URL = "https://backoffice.example.com"
    monkeypatch.setattr(
        "postbacks.transport.requests_sender.send",
        lambda method, url, *, headers, body="": HttpResult(status=500, error=ERROR),
    )


@pytest.fixture
def maria(django_user_model):
    """The affiliate's manager (not in the managers group)."""
    return django_user_model.objects.create_user(
        "maria", email="maria@example.com", password="x", is_staff=True
    )


@pytest.fixture
def group_member(django_user_model):
    user = django_user_model.objects.create_user("gus", email="gus@example.com", password="x")
    call_command("assign_role", "gus", "managers", stdout=io.StringIO())
    return user


def postback_of(manager=None, url=DOWN, **fields) -> Postback:
    return PostbackFactory(url=url, affiliate=AffiliateFactory(manager=manager), **fields)


def streak(failures: int, since=timedelta(days=6), host=HOST) -> EndpointHealth:
    return EndpointHealth.objects.create(
        host=host,
        consecutive_failures=failures,
        first_failure_at=timezone.now() - since,
        last_failure_at=timezone.now(),
        last_error=ERROR,
    )


def fail_once(postback: Postback) -> None:
    delivery = Delivery.objects.create(
        postback=postback,
        conversion=ConversionFactory(affiliate=postback.affiliate),
        status="approved",
    )
    attempt_delivery(delivery.pk)


# --- auto-pause ----------------------------------------------------------------------------------


def test_an_auto_paused_postback_raises_one_alert_mailed_to_its_manager_and_the_group(
    down, maria, group_member
):
    postback = postback_of(manager=maria, name="Old tracker")
    streak(40)
    fail_once(postback)
    postback.refresh_from_db()
    assert not postback.active
    (alert,) = Alert.objects.all()
    assert (alert.kind, alert.postback, alert.endpoint) == (AlertKind.PAUSED, postback, HOST)
    assert mail.outbox == []  # mailed off the delivery path, by the every-minute check

    check_alerts()

    (message,) = mail.outbox
    assert sorted(message.to) == ["gus@example.com", "maria@example.com"]
    assert "Postback paused: Old tracker" in message.subject
    assert "paused automatically" in message.body and HOST in message.body


def test_the_email_links_to_the_postback_and_its_log_and_masks_the_error(down, maria):
    postback = postback_of(manager=maria)
    streak(40)
    fail_once(postback)
    check_alerts()
    body = mail.outbox[0].body
    assert f"https://backoffice.example.com/admin/postbacks/postback/{postback.pk}/change/" in body
    assert (
        "https://backoffice.example.com/admin/postbacks/delivery/"
        f"?postback__id__exact={postback.pk}" in body
    )
    assert "token=********" in body and "SECRET123" not in body


def test_an_alert_is_mailed_once(down, maria):
    streak(40)
    fail_once(postback_of(manager=maria))
    check_alerts()
    check_alerts()
    assert len(mail.outbox) == 1
    assert Alert.objects.get().mailed_to == "maria@example.com"


def test_while_an_alert_is_open_a_new_pause_of_the_postback_adds_none(down, maria):
    postback = postback_of(manager=maria)
    health = streak(40)
    fail_once(postback)
    Postback.objects.filter(pk=postback.pk).update(active=True)  # resumed, fails on
    breaker.auto_pause(health)
    assert Alert.objects.count() == 1
    assert not Postback.objects.get(pk=postback.pk).active


def test_after_acknowledgement_the_next_pause_raises_a_new_alert(down, maria):
    postback = postback_of(manager=maria)
    health = streak(40)
    fail_once(postback)
    alerts.acknowledge(Alert.objects.get().pk, maria)
    Postback.objects.filter(pk=postback.pk).update(active=True)
    breaker.auto_pause(health)
    assert Alert.objects.filter(acknowledged_at__isnull=True).count() == 1


def test_an_error_while_raising_an_alert_never_breaks_the_delivery(down, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("database hiccup")

    monkeypatch.setattr(alerts, "postbacks_paused", broken)
    postback = postback_of()
    streak(40)
    with caplog.at_level(logging.ERROR):
        fail_once(postback)
    postback.refresh_from_db()
    assert not postback.active  # paused all the same
    assert Delivery.objects.get().attempts == 1


# --- an endpoint that keeps failing --------------------------------------------------------------


def test_an_endpoint_reaching_the_failure_threshold_raises_one_alert(settings, maria):
    settings.POSTBACK_ALERT_FAILURES = 10
    postback_of(manager=maria)
    health = streak(9, since=timedelta(hours=1))
    assert alerts.raise_failing_endpoints() == []
    EndpointHealth.objects.filter(pk=health.pk).update(consecutive_failures=10)
    (alert,) = alerts.raise_failing_endpoints()
    assert (alert.kind, alert.endpoint, alert.postback) == (AlertKind.FAILING, HOST, None)
    assert "10 failed attempts in a row" in alert.summary
    assert alerts.raise_failing_endpoints() == []  # still open: no second one


def test_a_failing_endpoint_is_mailed_to_the_managers_of_every_affiliate_on_it(
    django_user_model, maria
):
    other = django_user_model.objects.create_user("olga", email="olga@example.com")
    first, second = postback_of(manager=maria), postback_of(manager=other, url=DOWN + "&x=1")
    postback_of(manager=other, url=DOWN, active=False)  # paused: not listed
    streak(12, since=timedelta(hours=1))
    check_alerts()
    (message,) = mail.outbox
    assert "Endpoint keeps failing: down.example.com:443" in message.subject
    assert sorted(message.to) == ["maria@example.com", "olga@example.com"]
    assert first.name in message.body and second.name in message.body


def test_an_acknowledged_endpoint_alert_comes_back_only_after_the_window(settings, maria):
    settings.POSTBACK_ALERT_WINDOW_HOURS = 72
    postback_of(manager=maria)
    streak(12, since=timedelta(days=10))
    (alert,) = alerts.raise_failing_endpoints()
    alerts.acknowledge(alert.pk, maria)
    assert alerts.raise_failing_endpoints() == []  # same streak, within the window

    Alert.objects.filter(pk=alert.pk).update(created=timezone.now() - timedelta(hours=73))
    (again,) = alerts.raise_failing_endpoints()
    assert again.pk != alert.pk


def test_a_new_failure_streak_raises_a_new_alert(maria):
    postback_of(manager=maria)
    health = streak(12, since=timedelta(hours=2))
    (alert,) = alerts.raise_failing_endpoints()
    alerts.acknowledge(alert.pk, maria)
    # The endpoint recovered and failed again: a new streak began after the alert.
    EndpointHealth.objects.filter(pk=health.pk).update(
        first_failure_at=timezone.now() + timedelta(seconds=1)
    )
    assert len(alerts.raise_failing_endpoints(now=timezone.now() + timedelta(minutes=5))) == 1


def test_no_endpoint_alert_when_turned_off_or_no_active_postback_uses_it(settings, maria):
    postback = postback_of(manager=maria)
    streak(50)
    settings.POSTBACK_ALERT_FAILURES = 0
    assert alerts.raise_failing_endpoints() == []
    settings.POSTBACK_ALERT_FAILURES = 10
    Postback.objects.filter(pk=postback.pk).update(active=False)
    assert alerts.raise_failing_endpoints() == []


def test_two_workers_raising_the_same_alert_at_once_make_one(monkeypatch):
    first = open_alert()
    # The other worker looked before the first alert was written: the constraint decides.
    monkeypatch.setattr("django.db.models.QuerySet.exists", lambda self: False)
    assert alerts.raise_alert(first.subject, kind=AlertKind.PAUSED, summary="again") is None
    assert Alert.objects.count() == 1


# --- mail problems -------------------------------------------------------------------------------


def test_a_mail_server_error_is_logged_and_noted_on_the_alert(maria, monkeypatch, caplog):
    def refuse(self, *args, **kwargs):
        raise ConnectionRefusedError("[Errno 111] Connection refused")

    monkeypatch.setattr("django.core.mail.EmailMessage.send", refuse)
    postback_of(manager=maria)
    streak(12)
    with caplog.at_level(logging.ERROR, logger="postbacks.alerts"):
        check_alerts()  # does not raise
    alert = Alert.objects.get()
    assert "Connection refused" in alert.mail_error
    assert "Could not e-mail alert" in caplog.text


def test_an_alert_nobody_can_be_mailed_says_so(django_user_model):
    Group.objects.get(name=MANAGERS).user_set.clear()
    postback_of(manager=None)
    streak(12)
    check_alerts()
    assert mail.outbox == []
    assert "set the affiliate's manager" in Alert.objects.get().mail_error


# --- the banner and its Acknowledge button ------------------------------------------------------


def open_alert(**fields) -> Alert:
    postback = postback_of()
    defaults = dict(
        kind=AlertKind.PAUSED,
        postback=postback,
        endpoint=HOST,
        summary="Postback paused automatically.",
        last_error=ERROR,
    )
    return alerts.raise_alert(f"postback:{postback.pk}", **(defaults | fields))


def test_the_admin_index_shows_open_alerts_with_the_error_masked(manager_client):
    alert = open_alert()
    page = manager_client.get(reverse("admin:index")).content.decode()
    assert f'id="pb-alert-{alert.pk}"' in page
    assert "Postback paused automatically." in page
    assert "token=********" in page and "SECRET123" not in page
    assert reverse("admin:postbacks_alert_acknowledge", args=[alert.pk]) in page


def test_acknowledging_removes_the_banner_for_everyone_and_records_who(
    manager_client, support_client
):
    alert = open_alert()
    url = reverse("admin:postbacks_alert_acknowledge", args=[alert.pk])
    response = manager_client.post(url, {"next": reverse("admin:index")})
    assert response.status_code == 302 and response.url == reverse("admin:index")
    alert.refresh_from_db()
    assert alert.acknowledged_by.username == "manager" and alert.acknowledged_at is not None
    for client in (manager_client, support_client):
        page = client.get(reverse("admin:index")).content.decode()
        assert "pb-alert-" not in page


def test_support_staff_see_the_banner_but_may_not_acknowledge(support_client):
    alert = open_alert()
    page = support_client.get(reverse("admin:index")).content.decode()
    assert f'id="pb-alert-{alert.pk}"' in page and "Acknowledge</button>" not in page
    url = reverse("admin:postbacks_alert_acknowledge", args=[alert.pk])
    assert support_client.post(url).status_code == 403
    assert Alert.objects.get().acknowledged_at is None


def test_the_alert_page_shows_whom_it_was_mailed_to_and_the_masked_error(support_client):
    alert = open_alert(mailed_to="maria@example.com")
    response = support_client.get(reverse("admin:postbacks_alert_change", args=[alert.pk]))
    page = response.content.decode()
    assert response.status_code == 200 and "maria@example.com" in page
    assert "token=********" in page and "SECRET123" not in page


def test_acknowledge_needs_a_post_with_a_csrf_token(django_user_model):
    alert = open_alert()
    url = reverse("admin:postbacks_alert_acknowledge", args=[alert.pk])
    client = Client(enforce_csrf_checks=True)
    client.force_login(django_user_model.objects.create_superuser("root", "r@example.com", "x"))
    assert client.get(url).status_code == 405
    assert client.post(url).status_code == 403
    assert Alert.objects.get().acknowledged_at is None


def test_acknowledge_goes_back_only_to_this_site(manager_client):
    alert = open_alert()
    url = reverse("admin:postbacks_alert_acknowledge", args=[alert.pk])
    response = manager_client.post(url, {"next": "https://evil.example.com/"})
    assert response.url == reverse("admin:index")


# --- set-up --------------------------------------------------------------------------------------


def test_the_affiliate_form_sets_the_manager_from_the_staff_users(admin_client, maria):
    affiliate = AffiliateFactory()
    url = reverse("admin:affiliates_affiliate_change", args=[affiliate.pk])
    form = admin_client.get(url).context["adminform"].form
    assert maria in form.fields["manager"].queryset
    data = {"name": affiliate.name, "email": affiliate.email, "active": "on", "manager": maria.pk}
    admin_client.post(url, {**data, "click_id_token": "", "_save": "Save"})
    affiliate.refresh_from_db()
    assert affiliate.manager == maria


def test_a_migration_schedules_the_check_every_minute():
    schedule = Schedule.objects.get(func="postbacks.delivery.tasks.check_alerts")
    assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == ("I", 1, -1)
