"""Demo data for a first look: an admin login, an API token, an affiliate with its portal login,
offers, a postback."""

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand
from django.db import transaction
from rest_framework.authtoken.models import Token

from affiliates.links import tracking_path
from affiliates.models import Affiliate, Offer
from conversions.models import ConversionType
from portal.models import AffiliateUser
from postbacks.models import Postback
from postbacks.roles import MANAGERS, SERVICE, sync_roles

DEMO_POSTBACK_URL = (
    "{sink}/postback?clickid={{affS1}}&payout={{payout}}&currency={{currency}}"
    "&status={{status}}&txid={{transactionId}}"
)


class Command(BaseCommand):
    help = "Create (or refresh) demo data and print the admin login and an API token."

    def add_arguments(self, parser):
        parser.add_argument(
            "--sink-url",
            default="http://127.0.0.1:8001",
            help="Where the demo postback is sent (the run_sink command).",
        )
        parser.add_argument(
            "--base-url",
            default="http://127.0.0.1:8000",
            help="Where the web app runs, for the links printed (PUBLIC_BASE_URL wins if set).",
        )
        parser.add_argument(
            "--admin-password",
            default="",
            help="Password for the 'admin' user (default: a new random one).",
        )
        parser.add_argument(
            "--portal-password",
            default="",
            help="Password for the demo affiliate's portal user (default: a new random one).",
        )

    @transaction.atomic
    def handle(self, *args, sink_url, base_url, admin_password, portal_password, **options):
        password = admin_password or secrets.token_urlsafe(9)
        portal_password = portal_password or secrets.token_urlsafe(9)
        admin = self._admin(password)
        token = self._token()
        affiliate, offers = self._affiliate_and_offers()
        # The demo affiliate's alerts (postbacks/alerts.py) go to the admin, on the console.
        Affiliate.objects.filter(pk=affiliate.pk, manager=None).update(manager=admin)
        self._postback(affiliate, sink_url.rstrip("/"))
        partner = self._portal_user(affiliate, portal_password)
        offer = offers[0]
        base = (settings.PUBLIC_BASE_URL or base_url).rstrip("/")
        self.stdout.write(
            "\nDemo data ready.\n"
            f"  Admin:      {base_url.rstrip('/')}/admin/  user '{admin.username}', "
            f"password '{password}'\n"
            f"  Portal:     {base_url.rstrip('/')}/portal/  user '{partner.username}', "
            f"password '{portal_password}' (the affiliate's own pages)\n"
            f"  API token:  {token.key}\n"
            f"  Affiliate:  {affiliate.name} (id {affiliate.pk}); offers "
            f"{', '.join(f'{o.name} (id {o.pk})' for o in offers)}\n"
            f"  Tracking link: {base}{tracking_path(affiliate, offer)}\n"
        )

    def _admin(self, password):
        User = get_user_model()
        admin, _ = User.objects.get_or_create(
            username="admin", defaults={"email": "admin@example.com"}
        )
        admin.is_staff = admin.is_superuser = True
        admin.set_password(password)
        admin.save()
        return admin

    def _portal_user(self, affiliate, password):
        """The demo affiliate's portal login: never staff, so never in the admin."""
        User = get_user_model()
        partner, _ = User.objects.get_or_create(
            username="partner@example.com", defaults={"email": "partner@example.com"}
        )
        partner.is_staff = partner.is_superuser = False
        partner.set_password(password)
        partner.save()
        AffiliateUser.objects.update_or_create(user=partner, defaults={"affiliate": affiliate})
        return partner

    def _token(self):
        User = get_user_model()
        service, _ = User.objects.get_or_create(username="demo-service")
        # Both roles, so every example in docs/api.md runs with the demo token: conversions
        # and rates (Conversion API) and configuration (Affiliate managers).
        sync_roles(Group, Permission)  # the groups, should a flush have removed them
        service.groups.add(*Group.objects.filter(name__in=[SERVICE, MANAGERS]))
        token, _ = Token.objects.get_or_create(user=service)
        return token

    def _affiliate_and_offers(self):
        affiliate, _ = Affiliate.objects.get_or_create(
            name="Demo Affiliate",
            defaults={"email": "partner@example.com", "click_id_token": "{clickid}"},
        )
        offers = [
            Offer.objects.get_or_create(
                name=name, defaults={"landing_page_url": url, "default_currency": currency}
            )[0]
            for name, url, currency in (
                ("Demo Shop", "https://shop.example.com/?utm_source=affiliate", "USD"),
                ("Demo Casino", "https://casino.example.com/welcome", "EUR"),
            )
        ]
        return affiliate, offers

    def _postback(self, affiliate, sink_url):
        postback, _ = Postback.objects.update_or_create(
            name="Demo postback to the local sink",
            affiliate=affiliate,
            defaults={
                "url": DEMO_POSTBACK_URL.format(sink=sink_url),
                "statuses": ["pending", "approved", "rejected"],
                "active": True,
            },
        )
        postback.conversion_types.set(ConversionType.objects.all())
        return postback
