"""Clicks, conversion types, conversions with their status history, and exchange rates."""

import secrets
import sys
import uuid
from decimal import Context, Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.utils.functional import cached_property

from affiliates.models import Affiliate, Offer
from trackdesk import currencies
from trackdesk.currencies import validate_currency
from trackdesk.prefix import PrefixIndex

# SQLite keeps a decimal as a REAL (a double) and Django reads it back rounded to 15
# significant digits; PostgreSQL keeps every digit. 15 is what both store exactly.
EXACT_DIGITS = 15


def significant_digits(value: Decimal) -> int:
    """Digits from the first non-zero one to the last (0.000120 and 1200 have two)."""
    return len("".join(map(str, value.as_tuple().digits)).strip("0"))


def validate_exact_digits(value) -> None:
    if not isinstance(value, Decimal) or not value.is_finite():
        return  # not a number: the field's own checks say so
    if significant_digits(value) > EXACT_DIGITS:
        raise ValidationError(
            f"Ensure that there are no more than {EXACT_DIGITS} significant digits (from the "
            "first non-zero digit to the last, e.g. 999999999999.999 or 123456789.123456): "
            "more would not be stored exactly.",
            code="max_significant_digits",
        )


class ExactDecimalField(models.DecimalField):
    """A DecimalField that takes only values both databases store exactly, and reads a value
    stored before that rule without raising."""

    default_validators = [validate_exact_digits]

    @cached_property
    def context(self):
        # Django's SQLite converter rounds what it reads with this context. At the column's
        # precision, a REAL that rounded past it (999999999999.999999 is stored as 1E+12)
        # raised InvalidOperation in every list, page and worker that read the row; with room
        # for any double the row reads as stored, and the field's validators refuse the value
        # wherever it is saved or sent (postbacks/rendering.py).
        return Context(prec=sys.float_info.max_10_exp + 1 + self.decimal_places)

    def to_python(self, value):
        if isinstance(value, float):  # rounded to the column's precision, as Django does
            value = Context(prec=self.max_digits).create_decimal_from_float(value)
        return super().to_python(value)


MONEY = {"max_digits": 18, "decimal_places": 6, "validators": [MinValueValidator(0)]}


def new_cid() -> str:
    """Our click id: 128 random bits, URL-safe."""
    return secrets.token_urlsafe(16)


class Click(models.Model):
    cid = models.CharField("click ID", max_length=32, unique=True, default=new_cid, editable=False)
    affiliate = models.ForeignKey(Affiliate, on_delete=models.PROTECT, related_name="clicks")
    offer = models.ForeignKey(Offer, on_delete=models.PROTECT, related_name="clicks")
    aff_s1 = models.CharField("affS1", max_length=255, blank=True)
    aff_s2 = models.CharField("affS2", max_length=255, blank=True)
    aff_s3 = models.CharField("affS3", max_length=255, blank=True)
    aff_s4 = models.CharField("affS4", max_length=255, blank=True)
    aff_s5 = models.CharField("affS5", max_length=255, blank=True)
    ip = models.GenericIPAddressField("IP", null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    referrer = models.CharField(max_length=2000, blank=True)
    created = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        # Support looks a postback up by our click ID or the affiliate's own (the log's search
        # and the API's click_id filter: exact, or a prefix in any case, trackdesk/prefix.py).
        indexes = [
            models.Index(fields=["aff_s1"]),
            PrefixIndex("aff_s1", name="click_aff_s1_prefix"),
            PrefixIndex("cid", name="click_cid_prefix"),
        ]

    def __str__(self) -> str:
        return self.cid


class ConversionType(models.Model):
    code = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ConversionStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    ON_HOLD = "on_hold", "On hold"
    REJECTED = "rejected", "Rejected"
    REFUNDED = "refunded", "Refunded"
    FRAUD = "fraud", "Fraud"
    NOT_ALLOWED = "not_allowed", "Not allowed"
    TEST = "test", "Test"


class Conversion(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    affiliate = models.ForeignKey(Affiliate, on_delete=models.PROTECT, related_name="conversions")
    offer = models.ForeignKey(Offer, on_delete=models.PROTECT, related_name="conversions")
    click = models.ForeignKey(
        Click, on_delete=models.PROTECT, null=True, blank=True, related_name="conversions"
    )
    conversion_type = models.ForeignKey(ConversionType, on_delete=models.PROTECT)
    status = models.CharField(
        max_length=20, choices=ConversionStatus.choices, default=ConversionStatus.PENDING
    )
    transaction_id = models.CharField(
        "transaction ID",
        max_length=255,
        help_text="The advertiser's id for this conversion; unique per offer.",
    )
    payout = ExactDecimalField(null=True, blank=True, **MONEY)
    revenue = ExactDecimalField(null=True, blank=True, **MONEY)
    sale_amount = ExactDecimalField(null=True, blank=True, **MONEY)
    currency = models.CharField(
        max_length=3, choices=currencies.CHOICES, validators=[validate_currency]
    )
    external_cid = models.CharField("external click ID", max_length=255, blank=True)
    adv_s1 = models.CharField("advS1", max_length=255, blank=True)
    adv_s2 = models.CharField("advS2", max_length=255, blank=True)
    adv_s3 = models.CharField("advS3", max_length=255, blank=True)
    adv_s4 = models.CharField("advS4", max_length=255, blank=True)
    adv_s5 = models.CharField("advS5", max_length=255, blank=True)
    customer_id = models.CharField("customer ID", max_length=255, blank=True)
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created"]
        constraints = [
            models.UniqueConstraint(
                fields=["offer", "transaction_id"], name="conversion_unique_transaction_per_offer"
            )
        ]
        indexes = [
            models.Index(fields=["affiliate", "-created"]),
            models.Index(fields=["status", "-created"]),
            models.Index(fields=["transaction_id"]),  # the log's search, across offers
            PrefixIndex("transaction_id", name="conversion_transaction_prefix"),
        ]

    def __str__(self) -> str:
        return f"{self.conversion_type_id and self.conversion_type} {self.transaction_id}"


class StatusChangeSource(models.TextChoices):
    API = "api", "API"
    PIXEL = "pixel", "Conversion pixel"
    ADMIN = "admin", "Admin"
    IMPORT = "import", "Import"


class ConversionStatusChange(models.Model):
    """One row per status a conversion entered, its creation included (from_status blank)."""

    conversion = models.ForeignKey(
        Conversion, on_delete=models.CASCADE, related_name="status_changes"
    )
    from_status = models.CharField(max_length=20, choices=ConversionStatus.choices, blank=True)
    to_status = models.CharField(max_length=20, choices=ConversionStatus.choices)
    source = models.CharField(max_length=10, choices=StatusChangeSource.choices)
    created = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created", "id"]

    def __str__(self) -> str:
        return f"{self.from_status or '(new)'} → {self.to_status}"


class ExchangeRate(models.Model):
    """1 unit of `base` is worth `rate` units of `quote` on `valid_on` (ECB: base EUR)."""

    base = models.CharField(
        max_length=3, choices=currencies.CHOICES, validators=[validate_currency]
    )
    quote = models.CharField(
        max_length=3, choices=currencies.CHOICES, validators=[validate_currency]
    )
    rate = ExactDecimalField(
        max_digits=24, decimal_places=10, validators=[MinValueValidator(Decimal("0.0000000001"))]
    )
    valid_on = models.DateField(db_index=True)

    class Meta:
        ordering = ["-valid_on", "base", "quote"]
        constraints = [
            models.UniqueConstraint(
                fields=["base", "quote", "valid_on"], name="exchange_rate_unique_per_day"
            )
        ]

    def __str__(self) -> str:
        return f"1 {self.base} = {self.rate} {self.quote} ({self.valid_on})"


class PayoutRuleKind(models.TextChoices):
    FIXED = "fixed", "Fixed amount"
    PERCENT = "percent", "Percent of the sale amount"


PERCENT_LIMIT = Decimal(100)


def payout_rule_errors(kind: str, amount: Decimal | None, currency: str) -> dict[str, str]:
    """What is wrong with a rule's kind, amount and currency together, by field (admin and API)."""
    if kind == PayoutRuleKind.FIXED and not currency:
        return {"currency": "A fixed payout needs its currency."}
    if kind == PayoutRuleKind.PERCENT and currency:
        return {
            "currency": "A percent payout is in the conversion's own currency: leave this blank."
        }
    if kind == PayoutRuleKind.PERCENT and amount is not None and amount > PERCENT_LIMIT:
        return {"amount": f"A percentage of the sale amount is at most {PERCENT_LIMIT}."}
    return {}


class PayoutRule(models.Model):
    """The payout of a conversion that arrives without one, for one offer and conversion type.

    Fixed: `amount` in `currency`, converted into the conversion's currency. Percent: `amount`
    percent of the conversion's sale amount, in the conversion's currency. A conversion's own
    payout always wins (conversions.services).
    """

    offer = models.ForeignKey(Offer, on_delete=models.CASCADE, related_name="payout_rules")
    conversion_type = models.ForeignKey(
        ConversionType, on_delete=models.CASCADE, related_name="payout_rules"
    )
    kind = models.CharField(max_length=10, choices=PayoutRuleKind.choices)
    amount = ExactDecimalField(
        **MONEY, help_text="The payout (fixed), or the percentage of the sale amount (percent)."
    )
    currency = models.CharField(
        max_length=3,
        choices=currencies.CHOICES,
        validators=[validate_currency],
        blank=True,
        help_text="Fixed payouts only; a percent payout is in the conversion's currency.",
    )
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["offer", "conversion_type"]
        constraints = [
            models.UniqueConstraint(
                fields=["offer", "conversion_type"],
                name="payout_rule_unique_per_offer_and_type",
                violation_error_message="This offer has a payout rule for this conversion type "
                "already: change that one.",
            )
        ]

    def __str__(self) -> str:
        if self.kind == PayoutRuleKind.PERCENT:
            return f"{self.amount}% of the sale amount"
        return f"{self.amount} {self.currency}"

    def clean(self):
        errors = payout_rule_errors(self.kind, self.amount, self.currency)
        if errors:
            raise ValidationError(errors)
