"""The conversion page's status history: for each change, every postback of the affiliate and
what happened: sent (a link to the delivery), waiting, or not sent and why, by the same rules
that chose the deliveries (issue 12, item 3)."""

import itertools

import pytest
from django.urls import reverse

from conversions import services
from conversions.models import Conversion, StatusChangeSource
from postbacks.explain import status_history
from postbacks.matching import matching_postbacks, not_fired_reasons
from postbacks.models import Postback, Scope, TrackingSettings
from tests.factories import (
    AffiliateFactory,
    ClickFactory,
    OfferFactory,
    PostbackFactory,
    conversion_type,
)

pytestmark = pytest.mark.django_db


def convert(affiliate, *statuses, offer=None, type_code="sale"):
    """A conversion created in the first status and moved through the others, via services."""
    data = services.ConversionInput(
        affiliate=affiliate,
        offer=offer or ClickFactory(affiliate=affiliate).offer,
        conversion_type=conversion_type(type_code),
        transaction_id="T-1",
        currency="USD",
        status=statuses[0],
    )
    conversion, _ = services.create_conversion(data, source=StatusChangeSource.API)
    for status in statuses[1:]:
        services.update_conversion(conversion, source=StatusChangeSource.API, status=status)
    return conversion


def outcomes(conversion) -> list[dict]:
    """{postback name: verdict and reasons} per status change, oldest first."""
    return [
        {o.postback.name: (o.verdict, o.reasons) for o in entry.outcomes}
        for entry in status_history(conversion)
    ]


@pytest.fixture
def affiliate():
    return AffiliateFactory()


def test_rejected_then_approved_says_why_rejected_sent_nothing(affiliate):
    PostbackFactory(affiliate=affiliate, name="Approved only", statuses=["approved"])

    conversion = convert(affiliate, "rejected", "approved")

    created, approved = outcomes(conversion)
    assert created == {"Approved only": ("not sent", ["status Rejected not selected"])}
    assert approved == {"Approved only": ("waiting", [])}  # queued, not sent yet


def test_each_reason_is_named(affiliate):
    offer = OfferFactory(name="Shoes")
    PostbackFactory(affiliate=affiliate, name="Excluding", scope=Scope.GLOBAL, offers=[offer])
    PostbackFactory(
        affiliate=affiliate, name="Other offers", scope=Scope.OFFERS, offers=[OfferFactory()]
    )
    PostbackFactory(affiliate=affiliate, name="Leads", conversion_types=[conversion_type("lead")])
    PostbackFactory(affiliate=affiliate, name="Off", active=False)
    PostbackFactory(affiliate=affiliate, name="Paused", active=False, paused_reason="410 Gone")
    PostbackFactory(affiliate=AffiliateFactory(), name="Someone else's")

    (created,) = outcomes(convert(affiliate, "pending", offer=offer))

    assert created == {
        "Excluding": ("not sent", ["offer out of scope (Shoes is excluded)"]),
        "Other offers": (
            "not sent",
            ["offer out of scope (Shoes is not among the postback's offers)"],
        ),
        "Leads": ("not sent", ["conversion type Sale not selected"]),
        "Off": ("not sent", ["postback inactive"]),
        "Paused": ("not sent", ["postback paused: 410 Gone"]),
    }


def test_a_postback_added_after_the_change_says_so(affiliate):
    conversion = convert(affiliate, "pending")
    PostbackFactory(affiliate=affiliate, name="Later", statuses=["pending"])

    assert outcomes(conversion) == [
        {"Later": ("not sent", ["the postback was added after this change"])}
    ]


def test_sent_postbacks_link_to_their_delivery_on_the_page(affiliate, support_client):
    PostbackFactory(affiliate=affiliate, name="Everything", statuses=["pending", "approved"])
    PostbackFactory(affiliate=affiliate, name="Approvals", statuses=["approved"])
    conversion = convert(affiliate, "pending", "approved")

    page = support_client.get(reverse("admin:conversions_conversion_change", args=[conversion.pk]))

    text = page.text
    assert "Status history and postbacks" in text
    for delivery in conversion.deliveries.all():
        assert reverse("admin:postbacks_delivery_change", args=[delivery.pk]) in text
    assert "status Pending not selected" in text  # Approvals, at creation
    assert "waiting for an earlier status" in text  # approved waits for pending (in order)


def test_the_history_reads_a_fixed_number_of_queries(affiliate, django_assert_max_num_queries):
    for _ in range(6):
        PostbackFactory(
            affiliate=affiliate, statuses=["pending", "approved"], offers=[OfferFactory()]
        )
    conversion = convert(affiliate, "pending", "approved", "rejected", "approved")
    conversion = Conversion.objects.get(pk=conversion.pk)
    TrackingSettings.load()  # the settings row exists (created on first use)

    with django_assert_max_num_queries(6):
        history = status_history(conversion)
        [o.verdict for entry in history for o in entry.outcomes]

    assert len(history) == 4 and all(len(entry.outcomes) == 6 for entry in history)


def test_the_reasons_agree_with_the_matching_that_creates_deliveries(affiliate):
    """not_fired_reasons (rows in hand) and matching_postbacks (SQL) are one set of rules."""
    listed, other = OfferFactory(), OfferFactory()
    for scope, offers, types, statuses, active in itertools.product(
        Scope.values, [[], [listed]], ["sale", "lead"], [["pending"], ["approved"]], [True, False]
    ):
        PostbackFactory(
            affiliate=affiliate,
            scope=scope,
            offers=offers,
            conversion_types=[conversion_type(types)],
            statuses=statuses,
            active=active,
        )
    for offer, status in itertools.product([listed, other], ["pending", "approved"]):
        conversion = convert(affiliate, "pending", offer=offer)
        matched = set(matching_postbacks(conversion, status))
        by_reasons = {
            p
            for p in Postback.objects.filter(affiliate=affiliate)
            if not not_fired_reasons(p, conversion, status)
        }
        assert matched == by_reasons
        assert matched  # the product covers postbacks that fire, too
        conversion.deliveries.all().delete()
        conversion.status_changes.all().delete()
        conversion.delete()


def test_revenue_sent_blank_is_noted_while_the_tracking_setting_is_off(affiliate):
    PostbackFactory(
        affiliate=affiliate, name="With revenue", url="https://t.example.com/pb?r={revenue}"
    )

    (created,) = status_history(convert(affiliate, "pending"))

    (outcome,) = created.outcomes
    assert outcome.verdict == "waiting"
    assert outcome.notes == [
        "{revenue} sent blank: 'Allow revenue and sale amount parameters' is off "
        "(Settings → Tracking)"
    ]
