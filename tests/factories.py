"""Factories for test rows (factory-boy). Use these, not hand-built model instances."""

from decimal import Decimal

import factory

from affiliates.models import Affiliate, Offer
from conversions.models import Click, Conversion, ConversionType
from portal.models import AffiliateUser
from postbacks.models import Postback


class AffiliateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Affiliate

    name = factory.Sequence(lambda n: f"Affiliate {n}")
    email = factory.Sequence(lambda n: f"affiliate{n}@example.com")


class OfferFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Offer

    name = factory.Sequence(lambda n: f"Offer {n}")
    landing_page_url = "https://shop.example.com/landing?lang=en"
    default_currency = "USD"


class ClickFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Click

    affiliate = factory.SubFactory(AffiliateFactory)
    offer = factory.SubFactory(OfferFactory)
    aff_s1 = factory.Sequence(lambda n: f"aff-click-{n}")


def conversion_type(code: str = "sale") -> ConversionType:
    """The conversion type with this code (seeded by a migration; recreated after a flush)."""
    return ConversionType.objects.get_or_create(code=code, defaults={"name": code.title()})[0]


class ConversionFactory(factory.django.DjangoModelFactory):
    """A conversion row written directly: no status history, no postback event.

    To exercise the pipeline, create conversions through conversions.services instead.
    """

    class Meta:
        model = Conversion

    click = factory.SubFactory(ClickFactory)
    affiliate = factory.SelfAttribute("click.affiliate")
    offer = factory.SelfAttribute("click.offer")
    conversion_type = factory.LazyFunction(conversion_type)
    transaction_id = factory.Sequence(lambda n: f"txn-{n}")
    payout = Decimal("12.50")
    currency = "USD"


class PostbackFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Postback
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Postback {n}")
    affiliate = factory.SubFactory(AffiliateFactory)
    url = "https://tracker.example.com/postback?clickid={affS1}&payout={payout}"
    statuses = factory.LazyFunction(lambda: ["pending", "approved"])

    @factory.post_generation
    def conversion_types(self, create, extracted, **kwargs):
        if not create:
            return
        self.conversion_types.set(extracted if extracted is not None else [conversion_type()])

    @factory.post_generation
    def offers(self, create, extracted, **kwargs):
        if create and extracted:
            self.offers.set(extracted)


def postback_values(**overrides) -> dict:
    """A valid postback configuration as the plain dict validation and preview take."""
    return {
        "url": "https://tracker.example.com/postback?clickid={affS1}&payout={payout}",
        "method": "GET",
        "body_format": "form",
        "body_template": "",
        "statuses": ["approved"],
        "scope": "global",
        "currency": "",
        "status_map": {},
    } | overrides


def postback_form_data(affiliate, **overrides) -> dict:
    """What the admin's postback form posts for a valid GET postback of `affiliate`."""
    return {
        "name": "Network X",
        "affiliate": affiliate.pk,
        "active": "on",
        "scope": "global",
        "conversion_types": [conversion_type("sale").pk],
        "statuses": ["approved"],
        "currency": "",
        "method": "GET",
        "url": "https://tracker.example.com/pb?clickid={affS1}&payout={payout}",
        "body_format": "form",
        "body_template": "",
        "status_map": "{}",
        "_save": "Save",
    } | overrides


PORTAL_PASSWORD = "portal-horse-battery-9"


def portal_user(affiliate=None, username: str | None = None, password: str = PORTAL_PASSWORD):
    """A portal login (AffiliateUser) of `affiliate` (a new one by default): a non-staff user
    with `password`; returns the user."""
    from django.contrib.auth import get_user_model

    affiliate = affiliate or AffiliateFactory()
    username = username or f"user-{AffiliateUser.objects.count() + 1}-{affiliate.pk}@example.com"
    user = get_user_model().objects.create_user(username, email=username, password=password)
    AffiliateUser.objects.create(user=user, affiliate=affiliate)
    return user
