"""ISO 4217 currency codes in use, their minor units, the validator of currency fields, and
how an amount is shown to a person."""

from decimal import Decimal, localcontext

from django.core.exceptions import ValidationError

# Codes whose minor unit is not 2 decimal places.
_MINOR_UNITS_EXCEPTIONS = {
    **dict.fromkeys(
        [
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "UYI",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ],
        0,
    ),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
    "CLF": 4,
    "UYW": 4,
}

CODES = frozenset(
    [
        "AED",
        "AFN",
        "ALL",
        "AMD",
        "ANG",
        "AOA",
        "ARS",
        "AUD",
        "AWG",
        "AZN",
        "BAM",
        "BBD",
        "BDT",
        "BGN",
        "BHD",
        "BIF",
        "BMD",
        "BND",
        "BOB",
        "BRL",
        "BSD",
        "BTN",
        "BWP",
        "BYN",
        "BZD",
        "CAD",
        "CDF",
        "CHF",
        "CLF",
        "CLP",
        "CNY",
        "COP",
        "CRC",
        "CUP",
        "CVE",
        "CZK",
        "DJF",
        "DKK",
        "DOP",
        "DZD",
        "EGP",
        "ERN",
        "ETB",
        "EUR",
        "FJD",
        "FKP",
        "GBP",
        "GEL",
        "GHS",
        "GIP",
        "GMD",
        "GNF",
        "GTQ",
        "GYD",
        "HKD",
        "HNL",
        "HTG",
        "HUF",
        "IDR",
        "ILS",
        "INR",
        "IQD",
        "IRR",
        "ISK",
        "JMD",
        "JOD",
        "JPY",
        "KES",
        "KGS",
        "KHR",
        "KMF",
        "KPW",
        "KRW",
        "KWD",
        "KYD",
        "KZT",
        "LAK",
        "LBP",
        "LKR",
        "LRD",
        "LSL",
        "LYD",
        "MAD",
        "MDL",
        "MGA",
        "MKD",
        "MMK",
        "MNT",
        "MOP",
        "MRU",
        "MUR",
        "MVR",
        "MWK",
        "MXN",
        "MYR",
        "MZN",
        "NAD",
        "NGN",
        "NIO",
        "NOK",
        "NPR",
        "NZD",
        "OMR",
        "PAB",
        "PEN",
        "PGK",
        "PHP",
        "PKR",
        "PLN",
        "PYG",
        "QAR",
        "RON",
        "RSD",
        "RUB",
        "RWF",
        "SAR",
        "SBD",
        "SCR",
        "SDG",
        "SEK",
        "SGD",
        "SHP",
        "SLE",
        "SOS",
        "SRD",
        "SSP",
        "STN",
        "SVC",
        "SYP",
        "SZL",
        "THB",
        "TJS",
        "TMT",
        "TND",
        "TOP",
        "TRY",
        "TTD",
        "TWD",
        "TZS",
        "UAH",
        "UGX",
        "USD",
        "UYI",
        "UYU",
        "UYW",
        "UZS",
        "VED",
        "VES",
        "VND",
        "VUV",
        "WST",
        "XAF",
        "XCD",
        "XCG",
        "XOF",
        "XPF",
        "YER",
        "ZAR",
        "ZMW",
        "ZWG",
    ]
)

CHOICES = sorted((code, code) for code in CODES)


def is_valid(code: str) -> bool:
    return code in CODES


def validate_currency(code: str) -> None:
    """The validator of every currency field, model and API alike."""
    if not is_valid(code):
        raise ValidationError(
            f"'{code[:10]}' is not an ISO 4217 currency code (for example USD, EUR)."
        )


def minor_units(code: str) -> int:
    return _MINOR_UNITS_EXCEPTIONS.get(code, 2)


def quantum(code: str) -> Decimal:
    """The smallest amount of the currency, e.g. Decimal("0.01") for USD, Decimal("1") for JPY."""
    return Decimal(1).scaleb(-minor_units(code))


def format_amount(amount: Decimal | None, currency: str = "", *, code: bool = True) -> str:
    """An amount as people read it: "12.50 USD", "1,250 JPY", "0.125 BHD".

    At least the currency's minor-unit places and more only when the amount has them (a
    converted 4.123456 USD shows as such: display never rounds money away). Thousands are
    separated by commas. `code=False` leaves the currency code off (for a column that shows it
    next door); a blank currency shows two places and no code. None shows as "".
    """
    if amount is None:
        return ""
    amount = Decimal(amount)
    if not amount.is_finite():
        return str(amount)
    with localcontext() as ctx:
        ctx.prec = 60  # an 18-digit amount with 6 places never runs out of digits
        exponent = amount.normalize().as_tuple().exponent
        places = max(minor_units(currency), -exponent if isinstance(exponent, int) else 0)
        text = format(amount.quantize(Decimal(1).scaleb(-places)), ",f")
    return f"{text} {currency}" if code and currency else text
