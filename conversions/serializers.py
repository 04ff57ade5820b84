"""Conversion input validation (API and pixel alike), the one conversion-status field, the
conversion's JSON shape, and exchange rates."""

import sys
import uuid
from decimal import Context, Decimal

from django.db import IntegrityError, models, transaction
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from affiliates.models import Affiliate, Offer
from trackdesk.api import CurrencyField, StrictFieldsMixin

from . import services
from .models import (
    MONEY,
    Click,
    Conversion,
    ConversionStatus,
    ConversionStatusChange,
    ConversionType,
    ExchangeRate,
    PayoutRule,
    PayoutRuleKind,
    payout_rule_errors,
    validate_exact_digits,
)

TRACKDESK_STATUS_PREFIX = "conversion_status_"
STATUS_ALIASES = {"declined": ConversionStatus.REJECTED}
STATUS_HELP = (
    "One of " + ", ".join(ConversionStatus.values) + "; any case. Trackdesk's spellings "
    "(CONVERSION_STATUS_APPROVED, CONVERSION_STATUS_ON_HOLD, ...) and 'declined' (= rejected) "
    "are accepted too."
)


def parse_status(value) -> str | None:
    """Our status value for `value` (ours, CONVERSION_STATUS_*, or 'declined'), else None."""
    if not isinstance(value, str):
        return None
    text = value.strip().lower().removeprefix(TRACKDESK_STATUS_PREFIX)
    text = STATUS_ALIASES.get(text, text)
    return text if text in ConversionStatus.values else None


def click_for_cid(cid) -> Click | None:
    """The click with this cid, or None (also for values that cannot be a cid)."""
    if not isinstance(cid, str) or not cid or len(cid) > 32 or "\x00" in cid:
        return None
    # Sliced, not .first(): cid is unique, and an ORDER BY would only cost compiling it.
    click = next(iter(Click.objects.filter(cid=cid)[:1]), None)
    return None if click is None else services.with_owners(click)


# Documented as our values (what every answer holds); the other spellings are in the help text.
@extend_schema_field(serializers.ChoiceField(choices=ConversionStatus.choices))
class StatusField(serializers.CharField):
    """A conversion status in any accepted spelling; validates to our value.

    The one status field of the API: conversions and postbacks give the same errors.
    """

    default_error_messages = {
        "invalid_status": "'{value}' is not a conversion status. " + STATUS_HELP
    }

    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", STATUS_HELP)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        status = parse_status(data)
        if status is None:
            self.fail("invalid_status", value=str(data)[:50])
        return status


class StoredDecimalField(serializers.DecimalField):
    """A decimal field that writes out a stored value as it is: one stored before the digit
    limits (conversions.models.ExactDecimalField) has more digits than max_digits, which DRF's
    rounding would raise on for every list that holds the row."""

    def quantize(self, value):
        if self.decimal_places is None:
            return value
        roomy = Context(prec=sys.float_info.max_10_exp + 1 + self.decimal_places)
        places = Decimal(1).scaleb(-self.decimal_places)
        return value.quantize(places, rounding=self.rounding, context=roomy)


def money_field(help_text: str):
    """A non-negative amount that never passes through float; rendered as a string."""
    return serializers.DecimalField(
        max_digits=MONEY["max_digits"],
        decimal_places=MONEY["decimal_places"],
        min_value=Decimal(0),
        validators=[validate_exact_digits],
        coerce_to_string=True,
        required=False,
        allow_null=True,
        help_text=help_text + ' A JSON number or a string such as "100.50"; at most 15 '
        "significant digits, 12 before the decimal point and 6 after.",
    )


def text_field(help_text: str = ""):
    return serializers.CharField(
        max_length=255, required=False, allow_blank=True, default="", help_text=help_text
    )


class ActivePrimaryKeyField(serializers.PrimaryKeyRelatedField):
    """An active row by id; looked up in the context's prefetched rows when given (bulk)."""

    def to_internal_value(self, data):
        cache = self.context.get("prefetched", {}).get(self.queryset.model)
        if cache is None:
            return super().to_internal_value(data)
        pk = self.pk_field.to_internal_value(data)
        if pk not in cache:
            self.fail("does_not_exist", pk_value=pk)
        return cache[pk]


def active_pk_field(model, help_text: str):
    return ActivePrimaryKeyField(
        queryset=model.objects.filter(active=True),
        pk_field=serializers.IntegerField(),
        required=False,
        help_text=help_text,
        error_messages={
            "does_not_exist": f"No active {model._meta.verbose_name} with id {{pk_value}}."
        },
    )


class AmountsSerializer(StrictFieldsMixin, serializers.Serializer):
    payout = money_field("What the affiliate earns.")
    revenue = money_field("What the network earns.")
    sale_amount = money_field("The value of the sale.")


class ConversionCreateSerializer(AmountsSerializer):
    """A new conversion: from our click (`cid`) or for an explicit affiliate and offer."""

    cid = serializers.CharField(
        required=False, help_text="Our click id; affiliate and offer are taken from the click."
    )
    affiliate = active_pk_field(Affiliate, "Affiliate id; with `offer`, instead of `cid`.")
    offer = active_pk_field(Offer, "Offer id; with `affiliate`, instead of `cid`.")
    conversion_type = serializers.CharField(help_text="Conversion type code, e.g. sale, lead.")
    status = StatusField(required=False, default=ConversionStatus.PENDING)
    transaction_id = serializers.CharField(
        max_length=255,
        required=False,
        default=lambda: uuid.uuid4().hex,
        help_text="The advertiser's id for this conversion, unique per offer: sending it again "
        "returns the stored conversion. When missing a random one is generated, so a retried "
        "call without it creates a second conversion.",
    )
    currency = CurrencyField(
        required=False, help_text="ISO 4217 code, any case. Default: the offer's currency."
    )
    external_cid = text_field("External click id.")
    adv_s1 = text_field()
    adv_s2 = text_field()
    adv_s3 = text_field()
    adv_s4 = text_field()
    adv_s5 = text_field()
    customer_id = text_field()

    def validate_cid(self, value: str) -> Click:
        clicks = self.context.get("prefetched", {}).get(Click)
        click = click_for_cid(value) if clicks is None else clicks.get(value)
        if click is None:
            raise serializers.ValidationError(f"No click with cid '{value[:40]}'.")
        return click

    def validate_conversion_type(self, value: str) -> ConversionType:
        types = self.context.get("prefetched", {}).get(ConversionType)
        found = services.conversion_type(value) if types is None else types.get(value)
        if found is None:
            raise serializers.ValidationError(f"No conversion type with code '{value[:50]}'.")
        return found

    def validate(self, attrs):
        click = attrs.pop("cid", None)
        if click is None:
            _check_affiliate_and_offer_given(attrs)
        else:
            _check_click_fits(attrs, click)
            attrs.update(click=click, affiliate=click.affiliate, offer=click.offer)
        attrs.setdefault("currency", attrs["offer"].default_currency)
        return attrs


def _check_affiliate_and_offer_given(attrs) -> None:
    if "affiliate" not in attrs and "offer" not in attrs:
        raise serializers.ValidationError({"cid": "Give a cid, or an affiliate and an offer."})
    missing = [name for name in ("affiliate", "offer") if name not in attrs]
    if missing:
        raise serializers.ValidationError(dict.fromkeys(missing, "Required when no cid is given."))


def _check_click_fits(attrs, click: Click) -> None:
    """Explicit affiliate/offer must agree with the click's, and both must still be active."""
    errors = {}
    for name in ("affiliate", "offer"):
        owner = getattr(click, name)
        if name in attrs and attrs[name] != owner:
            errors[name] = f"Does not match the click's {name} (id {owner.pk})."
        elif not owner.active:
            errors.setdefault("cid", []).append(f"The click's {name} (id {owner.pk}) is inactive.")
    if errors:
        raise serializers.ValidationError(errors)


class ConversionUpdateSerializer(AmountsSerializer):
    """A status change and/or new amounts; fields left out stay as they are."""

    status = StatusField(required=False)

    def validate(self, attrs):
        if not attrs:
            raise serializers.ValidationError("Give a status or an amount to change.")
        return attrs


class StatusChangeSerializer(serializers.ModelSerializer):
    class Meta:
        model = ConversionStatusChange
        fields = ["from_status", "to_status", "source", "created"]
        read_only_fields = fields


class ConversionSerializer(serializers.ModelSerializer):
    """A stored conversion with the history of its statuses."""

    cid = serializers.SlugRelatedField(source="click", slug_field="cid", read_only=True)
    conversion_type = serializers.SlugRelatedField(slug_field="code", read_only=True)
    status_history = StatusChangeSerializer(source="status_changes", many=True, read_only=True)
    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.DecimalField: StoredDecimalField,
    }

    class Meta:
        model = Conversion
        fields = [
            "id",
            "affiliate",
            "offer",
            "cid",
            "conversion_type",
            "status",
            "transaction_id",
            "payout",
            "revenue",
            "sale_amount",
            "currency",
            "external_cid",
            "adv_s1",
            "adv_s2",
            "adv_s3",
            "adv_s4",
            "adv_s5",
            "customer_id",
            "created",
            "updated",
            "status_history",
        ]
        read_only_fields = fields


BULK_LIMIT = 1000


class BulkConversionsSerializer(serializers.Serializer):
    """Up to 1,000 conversions; each is validated like a single create, on its own."""

    conversions = serializers.ListField(
        child=serializers.DictField(),
        min_length=1,
        max_length=BULK_LIMIT,
        help_text="Conversions with the fields of a single create (ConversionCreate).",
    )


def prefetch_for_bulk(items: list) -> dict:
    """The rows a batch of raw items refers to, fetched with one query per kind.

    Pass as context={"prefetched": ...} to ConversionCreateSerializer so that validating each
    item reads these instead of querying.
    """

    def values(name, kind):
        return {i.get(name) for i in items if isinstance(i.get(name), kind)}

    def ids(name):
        return {v for v in values(name, (int, str)) if str(v).isdigit() and len(str(v)) < 19}

    cids = {c for c in values("cid", str) if 0 < len(c) <= 32}
    clicks = Click.objects.select_related("affiliate", "offer").filter(cid__in=cids)
    types = ConversionType.objects.filter(code__in=values("conversion_type", str))
    affiliates = Affiliate.objects.filter(active=True, pk__in={int(v) for v in ids("affiliate")})
    offers = Offer.objects.filter(active=True, pk__in={int(v) for v in ids("offer")})
    return {
        Click: {c.cid: c for c in clicks},
        ConversionType: {t.code: t for t in types},
        Affiliate: {a.pk: a for a in affiliates},
        Offer: {o.pk: o for o in offers},
    }


class BulkItemResultSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="Position of the item in `conversions`.")
    result = serializers.ChoiceField(choices=["created", "existing", "error"])
    id = serializers.UUIDField(required=False, help_text="The conversion (created or existing).")
    transaction_id = serializers.CharField(required=False)
    errors = serializers.DictField(
        required=False, help_text="Field errors of a rejected item: {field: [message, ...]}."
    )


class BulkResultSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    existing = serializers.IntegerField()
    errors = serializers.IntegerField()
    results = BulkItemResultSerializer(many=True)


class ExchangeRateSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    """Saving upserts on (base, quote, valid_on); `created` then says whether the row is new."""

    base = CurrencyField()
    quote = CurrencyField()
    rate = StoredDecimalField(
        max_digits=24,
        decimal_places=10,
        validators=[validate_exact_digits],
        help_text="Units of `quote` for 1 unit of `base`, as a decimal string; at most 15 "
        "significant digits, 14 before the decimal point and 10 after.",
    )

    class Meta:
        model = ExchangeRate
        fields = ["id", "base", "quote", "rate", "valid_on"]
        validators = []  # an existing (base, quote, valid_on) is updated, not refused

    def validate_rate(self, value):
        if value <= 0:
            raise serializers.ValidationError("The rate must be greater than zero.")
        return value

    def validate(self, attrs):
        if attrs["base"] == attrs["quote"]:
            raise serializers.ValidationError(
                {"quote": "The quote currency must differ from base."}
            )
        return attrs

    def create(self, validated_data):
        rate, self.created = ExchangeRate.objects.update_or_create(
            base=validated_data["base"],
            quote=validated_data["quote"],
            valid_on=validated_data["valid_on"],
            defaults={"rate": validated_data["rate"]},
        )
        return rate


class PayoutRuleSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    """An offer's payout for one conversion type, used when a conversion arrives without one."""

    offer = serializers.PrimaryKeyRelatedField(
        queryset=Offer.objects.all(), pk_field=serializers.IntegerField(), help_text="Offer id."
    )
    conversion_type = serializers.SlugRelatedField(
        slug_field="code",
        queryset=ConversionType.objects.all(),
        help_text="Conversion type code, e.g. sale.",
    )
    kind = serializers.ChoiceField(
        choices=PayoutRuleKind.choices,
        help_text="fixed: `amount` in `currency`, converted into the conversion's currency. "
        "percent: `amount` percent (at most 100) of the conversion's sale amount, in the "
        "conversion's currency, rounded half up to its minor unit.",
    )
    amount = StoredDecimalField(
        max_digits=MONEY["max_digits"],
        decimal_places=MONEY["decimal_places"],
        min_value=Decimal(0),
        validators=[validate_exact_digits],
        help_text='The payout or the percentage, as a decimal string such as "12.50"; at most 15 '
        "significant digits, 12 before the decimal point and 6 after.",
    )
    currency = CurrencyField(
        required=False,
        allow_blank=True,
        default="",
        help_text="ISO 4217 code of a fixed payout; blank for a percent payout.",
    )

    class Meta:
        model = PayoutRule
        fields = ["id", "offer", "conversion_type", "kind", "amount", "currency", "active"]
        validators = []  # the unique pair is checked in validate(), with a message that helps

    def validate(self, attrs):
        current = {name: getattr(self.instance, name, None) for name in self.Meta.fields}
        merged = {**current, **attrs}
        errors = payout_rule_errors(merged["kind"], merged["amount"], merged["currency"] or "")
        if errors:
            raise serializers.ValidationError(errors)
        taken = (
            PayoutRule.objects.filter(
                offer=merged["offer"], conversion_type=merged["conversion_type"]
            )
            .exclude(pk=getattr(self.instance, "pk", None))
            .values_list("pk", flat=True)
            .first()
        )
        if taken is not None:
            raise _rule_taken(taken)
        return attrs

    def save(self, **kwargs):
        # Two clients creating the same pair at once: the second loses at the unique constraint
        # after validate() passed; it gets the same 400 as when the first had been seen.
        try:
            with transaction.atomic():
                return super().save(**kwargs)
        except IntegrityError:
            data = {**self.validated_data, **kwargs}
            offer = data.get("offer") or self.instance.offer
            kind = data.get("conversion_type") or self.instance.conversion_type
            found = PayoutRule.objects.filter(offer=offer, conversion_type=kind)
            raise _rule_taken(found.values_list("pk", flat=True).first()) from None


def _rule_taken(pk) -> serializers.ValidationError:
    return serializers.ValidationError(
        {
            "conversion_type": "This offer has a payout rule for this conversion type "
            f"already (id {pk}): change that one."
        }
    )
