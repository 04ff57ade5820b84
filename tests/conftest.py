import io

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient


@pytest.fixture(autouse=True)
def broker_calls(request, monkeypatch):
    """Unit tests never talk to the broker: the delivery ids they enqueue are recorded here.

    Tests marked e2e use the real broker and a real qcluster.
    """
    if request.node.get_closest_marker("e2e"):
        yield None
        return
    calls = []
    monkeypatch.setattr("postbacks.delivery.queue.send_to_broker", calls.append)
    yield calls


@pytest.fixture
def orm_broker() -> bool:
    """The broker writes its task rows to our database, in the caller's transaction
    (queue.enqueue_on_commit): there a task is handed over at once and commits with the rows;
    on Redis it is handed over after the commit."""
    from postbacks.delivery import queue

    return queue.broker_writes_to_database()


@pytest.fixture
def api_user(django_user_model):
    """A service user that may do everything the API offers: every permission of the three
    apps behind it, not a superuser, so permission checks still run. Who may do what, role by
    role: tests/test_api_permissions.py."""
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("service", password="not-used")
    apps = ("affiliates", "conversions", "postbacks")
    user.user_permissions.set(Permission.objects.filter(content_type__app_label__in=apps))
    return user


@pytest.fixture
def api_client(api_user):
    """An API client authenticated with a service user's token."""
    token = Token.objects.create(user=api_user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def anon_client():
    return APIClient()


def _role_client(django_user_model, client, username: str, role: str):
    from django.core.management import call_command

    django_user_model.objects.create_user(username, password="pw-not-used")
    call_command("assign_role", username, role, stdout=io.StringIO())
    client.force_login(django_user_model.objects.get(username=username))
    return client


@pytest.fixture
def manager_client(django_user_model, client):
    """A logged-in admin client for a user in the "Affiliate managers" group."""
    return _role_client(django_user_model, client, "manager", "managers")


@pytest.fixture
def support_client(django_user_model):
    """A logged-in admin client for a user in the "Support staff" group."""
    from django.test import Client

    return _role_client(django_user_model, Client(), "support", "support")


@pytest.fixture(autouse=True)
def fresh_slow_start_windows():
    """Concurrent dispatch remembers each endpoint's window and the postbacks it sends for per
    process; tests reuse endpoints and change postbacks with QuerySet.update()."""
    from postbacks.delivery import batch

    batch.forget_windows()
    batch.forget_postbacks()
    yield
    batch.forget_windows()
    batch.forget_postbacks()
    from postbacks.transport import aiohttp_sender

    aiohttp_sender.forget_shared_sender()  # its connections and checked addresses


@pytest.fixture(autouse=True)
def fresh_hot_config_memory():
    """Each case starts without remembered offers, types and rules (trackdesk/memo.py): tests
    change them with QuerySet.update() and flushes, which send no signal."""
    from trackdesk import memo

    memo.forget_all()
    yield
    memo.forget_all()


@pytest.fixture(params=["requests", "aiohttp"])
def send(request):
    """The requests sender's send, then the same call through the concurrent sender: both apply
    the guard, TLS and redirect rules of postbacks/transport/policy.py."""
    from postbacks.transport import requests_sender
    from postbacks.transport.aiohttp_sender import ConcurrentSender

    def send_concurrently(method, url, *, headers, body=""):
        with ConcurrentSender() as sender:
            return sender.submit(method, url, headers, body).result(timeout=30)

    return requests_sender.send if request.param == "requests" else send_concurrently
