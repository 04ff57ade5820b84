"""`{% load money %}{{ conversion.payout|money:conversion.currency }}` → "12.50 USD"."""

from django import template

from trackdesk.currencies import format_amount

register = template.Library()


@register.filter
def money(amount, currency=""):
    """The amount in the currency's own precision with its code; see format_amount."""
    return format_amount(amount, currency or "")


@register.filter
def amount(amount, currency=""):
    """As `money`, without the currency code (for a table whose next column shows it)."""
    return format_amount(amount, currency or "", code=False)
