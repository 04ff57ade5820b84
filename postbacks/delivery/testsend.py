"""Test sends: a postback rendered for a chosen conversion (or the built-in sample) and sent now.

The request goes through the delivery path itself (single.send_attempt: the same renderer,
headers, address guard and timeouts) and is logged as a Delivery with is_test=True and its
attempt. The row is written only once the attempt is over, already finished, so the sweeper
and the workers never see it open; a test send changes no conversion and is never the real
delivery of an event (the once-per-event constraint leaves test rows out).
"""

from django.db import transaction

from conversions.models import Conversion
from postbacks.delivery import single
from postbacks.models import Delivery, Postback
from postbacks.sample import SAMPLE_CURRENCY, sample_conversion


def send_test(postback: Postback, conversion: Conversion | None = None) -> Delivery:
    """Send `postback` now for `conversion` in its current status, or for the sample conversion.

    Returns the saved test delivery; `delivery.attempt_log` holds the request and response.
    """
    test = Delivery(
        postback=postback,
        conversion=conversion or sample_conversion(postback.currency or SAMPLE_CURRENCY),
        status=conversion.status if conversion else sample_status(postback),
        is_test=True,
        attempts=1,
    )
    attempt, result = single.send_attempt(test)
    if conversion is None:
        test.conversion = None  # the sample is never saved
    with transaction.atomic():
        test.save()
        attempt.delivery = test
        single.record(test, attempt, result)
    return test


def sample_status(postback: Postback) -> str:
    """The status a sample event has: the first one the postback fires on."""
    return postback.statuses[0] if postback.statuses else "approved"


def describe(test: Delivery) -> str:
    """One line for a message, e.g. "success (HTTP 200)" or "failed (Connection failed: …)"."""
    attempt = test.attempt_log.first()
    outcome = f"HTTP {attempt.response_status}" if attempt.response_status else attempt.error
    return f"{test.get_state_display().lower()} ({outcome})"
