"""Portal accounts: invitations from the affiliate's admin page, login with the admin's lockout,
logout, password change and reset; affiliate users are never staff."""

import io
import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.management import call_command
from django.test import Client

from portal.models import AffiliateUser

from .factories import PORTAL_PASSWORD, AffiliateFactory, portal_user

pytestmark = pytest.mark.django_db


def login(client, username, password=PORTAL_PASSWORD, ip="203.0.113.7"):
    return client.post(
        "/portal/login/", {"username": username, "password": password}, REMOTE_ADDR=ip
    )


def link_in(message) -> str:
    return re.search(r"https?://\S+(/portal/password/set/\S+/)", message.body).group(1)


def test_a_manager_invites_a_portal_user_from_the_affiliates_page(manager_client):
    affiliate = AffiliateFactory(email="ops@network.example")
    page = manager_client.get(f"/admin/affiliates/affiliate/{affiliate.pk}/change/")
    assert "Invite a portal user" in page.content.decode()
    form = manager_client.get(f"/admin/affiliates/affiliate/{affiliate.pk}/invite/")
    assert 'value="ops@network.example"' in form.content.decode()  # the affiliate's e-mail

    response = manager_client.post(
        f"/admin/affiliates/affiliate/{affiliate.pk}/invite/", {"email": "ana@network.example"}
    )

    assert response.status_code == 302
    member = AffiliateUser.objects.get(user__username="ana@network.example")
    assert member.affiliate == affiliate
    assert not member.user.is_staff and not member.user.is_superuser
    assert not member.user.has_usable_password()
    assert mail.outbox[-1].to == ["ana@network.example"]
    assert "/portal/password/set/" in mail.outbox[-1].body


def test_the_invitation_link_sets_the_password_once_and_then_the_user_logs_in(manager_client):
    client = Client()
    affiliate = AffiliateFactory()
    manager_client.post(
        f"/admin/affiliates/affiliate/{affiliate.pk}/invite/", {"email": "bo@example.com"}
    )
    link = link_in(mail.outbox[-1])

    form = client.get(link, follow=True)  # Django swaps the token for a session and redirects
    assert form.context["validlink"]
    new = {"new_password1": "A-fresh-horse-77", "new_password2": "A-fresh-horse-77"}
    assert client.post(form.redirect_chain[-1][0], new).status_code == 302

    assert not client.get(link, follow=True).context["validlink"]  # used up
    assert login(client, "bo@example.com", "A-fresh-horse-77").url == "/portal/"
    assert client.get("/portal/").status_code == 200


def test_support_staff_cannot_invite(support_client):
    affiliate = AffiliateFactory()
    response = support_client.post(
        f"/admin/affiliates/affiliate/{affiliate.pk}/invite/", {"email": "x@example.com"}
    )
    assert response.status_code == 403
    assert not AffiliateUser.objects.exists()


def test_inviting_an_existing_username_says_so(manager_client):
    affiliate = AffiliateFactory()
    portal_user(affiliate, username="taken@example.com")
    response = manager_client.post(
        f"/admin/affiliates/affiliate/{affiliate.pk}/invite/", {"email": "taken@example.com"}
    )
    assert response.status_code == 200
    assert "exists already" in response.content.decode()


def test_an_affiliate_user_logs_in_to_the_portal_but_not_to_the_admin(client):
    user = portal_user()
    assert login(client, user.username).status_code == 302
    assert client.get("/portal/").status_code == 200
    admin = client.get("/admin/")
    assert admin.status_code == 302 and admin.url.startswith("/admin/login/")


def test_staff_cannot_log_in_to_the_portal(client):
    get_user_model().objects.create_user("boss", password=PORTAL_PASSWORD, is_staff=True)
    response = login(client, "boss")
    assert response.status_code == 200
    assert "no access to the affiliate portal" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_a_deactivated_affiliate_closes_its_portal(client):
    user = portal_user()
    assert login(client, user.username).status_code == 302
    user.affiliate_user.affiliate.active = False
    user.affiliate_user.affiliate.save()

    assert client.get("/portal/").status_code == 404  # the open session ends its access
    response = login(Client(), user.username)
    assert response.status_code == 200
    assert "no access to the affiliate portal" in response.content.decode()


def test_staff_logged_in_elsewhere_get_404_in_the_portal(admin_client):
    assert admin_client.get("/portal/").status_code == 404


def test_pages_send_anonymous_visitors_to_the_portal_login(client):
    response = client.get("/portal/conversions/")
    assert response.status_code == 302
    assert response.url == "/portal/login/?next=/portal/conversions/"


def test_wrong_passwords_lock_the_portal_login_as_they_do_the_admins(client, settings):
    user = portal_user()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        login(client, user.username, "wrong")
    assert login(client, user.username).status_code == 429
    assert "_auth_user_id" not in client.session
    # From another address the same user still gets in (per username and address).
    assert login(client, user.username, ip="198.51.100.9").status_code == 302


def test_logout_is_a_post(client):
    user = portal_user()
    client.force_login(user)
    assert client.get("/portal/logout/").status_code == 405
    assert client.post("/portal/logout/").url == "/portal/login/"
    assert "_auth_user_id" not in client.session


def test_password_change(client):
    user = portal_user()
    client.force_login(user)
    response = client.post(
        "/portal/password/",
        {
            "old_password": PORTAL_PASSWORD,
            "new_password1": "Another-horse-42",
            "new_password2": "Another-horse-42",
        },
    )
    assert response.url == "/portal/password/done/"
    user.refresh_from_db()
    assert user.check_password("Another-horse-42")


def test_password_reset_mails_affiliate_users_only(client):
    user = portal_user(username="cy@example.com")
    get_user_model().objects.create_user("staffer", email="staff@example.com", is_staff=True)

    client.post("/portal/password/reset/", {"email": "staff@example.com"})
    assert mail.outbox == []
    client.post("/portal/password/reset/", {"email": "CY@example.com"})

    assert [m.to for m in mail.outbox] == [[user.email]]
    link = link_in(mail.outbox[0])
    assert client.get(link, follow=True).context["validlink"]


def test_a_reset_link_for_a_staff_user_does_not_work_in_the_portal(client):
    from django.contrib.auth.tokens import default_token_generator
    from django.utils.encoding import force_bytes
    from django.utils.http import urlsafe_base64_encode

    staff = get_user_model().objects.create_user("staffer", password="x", is_staff=True)
    uid = urlsafe_base64_encode(force_bytes(staff.pk))
    token = default_token_generator.make_token(staff)
    page = client.get(f"/portal/password/set/{uid}/{token}/", follow=True)
    assert not page.context["validlink"]


def test_seed_demo_prints_a_portal_login_for_the_demo_affiliate(client):
    out = io.StringIO()
    call_command("seed_demo", base_url="http://127.0.0.1:8123", stdout=out)
    printed = out.getvalue()

    line = re.search(r"Portal:\s+(\S+)\s+user '([^']+)', password '([^']+)'", printed)
    assert line.group(1) == "http://127.0.0.1:8123/portal/"
    member = AffiliateUser.objects.get(user__username=line.group(2))
    assert member.affiliate.name == "Demo Affiliate" and not member.user.is_staff
    assert login(client, line.group(2), line.group(3)).url == "/portal/"
