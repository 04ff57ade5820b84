"""Currency conversion with the stored exchange rates (direct, inverse, or crossed via a base)."""

from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext

from django.db.models import Count

from trackdesk.currencies import quantum

from .models import ExchangeRate

# Cross rates go through a base both currencies are quoted against; ECB's base comes first.
PREFERRED_BASE = "EUR"


class ConversionError(ValueError):
    """An amount cannot be converted; the message says why and what to fix."""


class MissingRate(ConversionError):
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


def convert_rounded(amount: Decimal, from_code: str, to_code: str, on: date) -> Decimal:
    """convert() rounded half up to the minor unit of `to_code` (0.01 USD, 1 JPY)."""
    converted = convert(amount, from_code, to_code, on)
    try:
        with localcontext() as ctx:
            ctx.prec = 28
            return converted.quantize(quantum(to_code), rounding=ROUND_HALF_UP)
    except InvalidOperation:  # more than 28 digits: only extreme rates get there
        raise ConversionError(
            f"{amount} {from_code} is too large to convert to {to_code} with the stored rates "
            f"({from_code} → {to_code}: {exchange_rate(from_code, to_code, on)}); check them "
            "in Admin → Exchange rates."
        ) from None


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
