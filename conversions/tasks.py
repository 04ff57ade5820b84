"""django-q2 entry points of conversions: the daily ECB rate import (a schedule created by
migration 0006_ecb_import_schedule runs it)."""

import logging

from django.conf import settings
from django.core.management.base import CommandError

from conversions.management.commands.import_ecb_rates import import_rates

log = logging.getLogger(__name__)


def import_ecb_rates() -> str:
    """Import the rates from ECB_RATES_SOURCE (a file or URL); with the setting empty, nothing.

    Returns what happened (django-q2 stores it as the task's result); a source that cannot be
    read or parsed fails the task with the reason, and tomorrow's run tries again.
    """
    source = settings.ECB_RATES_SOURCE
    if not source:
        message = "ECB_RATES_SOURCE is empty: no exchange rates imported."
        log.info(message)
        return message
    try:
        rates = import_rates(source)
    except CommandError as exc:
        log.error("ECB rate import from %s failed: %s", source, exc)
        raise
    days = sorted({rate.valid_on for rate in rates})
    message = f"Imported {len(rates)} exchange rates for {days[0]} to {days[-1]} from {source}."
    log.info(message)
    return message
