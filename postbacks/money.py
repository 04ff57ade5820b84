"""Postbacks and exchange rates: the warning for a custom currency without rates, and the
deliveries waiting for a rate, sent as soon as one is saved.

A delivery that cannot convert its amounts waits (postbacks/delivery/single.py, RateWait) with
the pair in Delivery.waiting_for_rate; saving a rate (admin, API, ECB import) makes those it may
help due now (postbacks/signals.py calls release_waiting on ExchangeRate's post_save).
"""

from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from affiliates.models import Offer
from conversions.exchange import MissingRate, exchange_rate
from conversions.models import Conversion
from postbacks.delivery import queue
from postbacks.models import Delivery, Scope

# The conversions whose currencies count as "in use" for an affiliate's postback.
RECENT_DAYS = 30
# The currencies looked at, at most (one rate lookup each).
MAX_CURRENCIES = 20


def missing_rate_warnings(postback) -> list[str]:
    """One warning per currency in use that has no rate into the postback's custom currency
    today: the offers' default currencies (those the postback covers) and the currencies of
    the affiliate's conversions of the last RECENT_DAYS days. Empty without a custom currency."""
    target = postback.currency
    if not target:
        return []
    today = timezone.now().date()
    warnings = []
    for code in sorted(currencies_in_use(postback) - {target})[:MAX_CURRENCIES]:
        try:
            exchange_rate(code, target, today)
        except MissingRate:
            warnings.append(
                f"No exchange rate from {code} to {target}: postbacks for {code} conversions "
                f"wait until one is added (Admin → Exchange rates, the rates API or "
                "manage.py import_ecb_rates); they are sent as soon as it is."
            )
    return warnings


def currencies_in_use(postback) -> set[str]:
    offers = Offer.objects.all()
    if postback.pk:
        listed = postback.offers.values("pk")
        if postback.scope == Scope.OFFERS:
            offers = offers.filter(pk__in=listed)
        else:
            offers = offers.exclude(pk__in=listed)
    recent = Conversion.objects.filter(
        affiliate_id=postback.affiliate_id,
        created__gte=timezone.now() - timedelta(days=RECENT_DAYS),
    )
    codes = set(offers.order_by().values_list("default_currency", flat=True).distinct())
    codes |= set(recent.order_by().values_list("currency", flat=True).distinct())
    return codes


def waiting_for_rates():
    """Open deliveries waiting for an exchange rate (the dashboard lists them)."""
    return Delivery.objects.open().exclude(waiting_for_rate="").filter(is_test=False)


def release_waiting(*codes: str) -> int:
    """Make the deliveries waiting for a rate that involves any of `codes` due now and queue
    them (after the current transaction commits); a rate from or to either currency of a pair
    may be what converts it, directly, inverted or crossed. Returns how many."""
    match = Q()
    for code in codes:
        match |= Q(waiting_for_rate__contains=code)
    now = timezone.now()
    # Those due already are queued (or the sweeper queues them): once is enough, also when an
    # import saves rates for many currencies.
    waiting = waiting_for_rates().filter(match, next_attempt_at__gt=now)
    ids = list(waiting.values_list("pk", flat=True))
    if ids:
        Delivery.objects.filter(pk__in=ids).update(next_attempt_at=now, enqueued_at=None)
        queue.enqueue_on_commit(ids)
    return len(ids)
