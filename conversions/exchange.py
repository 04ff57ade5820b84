"""Currency conversion with the stored exchange rates (direct, inverse, or crossed via a base)."""

from datetime import date
from decimal import Decimal, localcontext

from django.db.models import Count

from .models import ExchangeRate

# Cross rates go through a base both currencies are quoted against; ECB's base comes first.
PREFERRED_BASE = "EUR"


class MissingRate(ValueError):
    """No stored rate can convert between two currencies on a date."""

    def __init__(self, from_code: str, to_code: str, on: date):
        super().__init__(
            f"No exchange rate from {from_code} to {to_code} on or before {on.isoformat()}; "
            "import rates (manage.py import_ecb_rates) or add one in Admin → Exchange rates."
        )


def convert(amount: Decimal, from_code: str, to_code: str, on: date) -> Decimal:
    """`amount` in `from_code` expressed in `to_code` with the rates valid on `on`; unrounded."""
    if from_code == to_code:
        return amount
    rate = exchange_rate(from_code, to_code, on)
    with localcontext() as ctx:
        ctx.prec = 28
        return amount * rate


def exchange_rate(from_code: str, to_code: str, on: date) -> Decimal:
    """How many `to_code` one `from_code` buys on `on`, from the latest rates on or before it."""
    with localcontext() as ctx:
        ctx.prec = 28
        direct = _latest_rate(from_code, to_code, on)
        if direct is not None:
            return direct
        inverse = _latest_rate(to_code, from_code, on)
        if inverse is not None:
            return 1 / inverse
        base = _common_base(from_code, to_code, on)
        if base is not None:
            return _latest_rate(base, to_code, on) / _latest_rate(base, from_code, on)
    raise MissingRate(from_code, to_code, on)


def _latest_rate(base: str, quote: str, on: date) -> Decimal | None:
    return (
        ExchangeRate.objects.filter(base=base, quote=quote, valid_on__lte=on)
        .order_by("-valid_on")
        .values_list("rate", flat=True)
        .first()
    )


def _common_base(from_code: str, to_code: str, on: date) -> str | None:
    """A base currency with rates into both currencies on or before `on`."""
    bases = set(
        ExchangeRate.objects.filter(quote__in=[from_code, to_code], valid_on__lte=on)
        .order_by()
        .values("base")
        .annotate(quotes=Count("quote", distinct=True))
        .filter(quotes=2)
        .values_list("base", flat=True)
    )
    if PREFERRED_BASE in bases:
        return PREFERRED_BASE
    return min(bases, default=None)
