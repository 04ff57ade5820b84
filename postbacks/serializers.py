"""API representations of postbacks, and of deliveries with their attempts."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from rest_framework import serializers
from rest_framework.settings import api_settings

from conversions.models import ConversionStatus, ConversionType
from conversions.serializers import StatusField, parse_status
from postbacks import validation
from postbacks.models import Delivery, DeliveryAttempt, Postback
from postbacks.money import missing_rate_warnings
from postbacks.rendering import CONFIG_FIELDS
from trackdesk.api import CurrencyField, StrictFieldsMixin
from trackdesk.masking import mask, shown_header_list


class OptionalCurrencyField(CurrencyField):
    """A currency where null means "the conversion's own"; the model stores that as blank."""

    def __init__(self, **kwargs):
        super().__init__(allow_null=True, allow_blank=True, **kwargs)

    def run_validation(self, data=serializers.empty):
        return super().run_validation(data) or ""

    def to_representation(self, value):
        return value or None


class StatusMapField(serializers.DictField):
    """What {status} renders as, keyed by conversion status (aliases accepted)."""

    child = serializers.CharField(allow_blank=True)

    def to_internal_value(self, data):
        mapping = super().to_internal_value(data)
        unknown = [key for key in mapping if parse_status(key) is None]
        if unknown:
            raise serializers.ValidationError(
                f"Unknown conversion status: {', '.join(unknown)}. "
                f"Use one of: {', '.join(ConversionStatus.values)}."
            )
        return {parse_status(key): value for key, value in mapping.items()}


class HeadersField(serializers.JSONField):
    """The postback's extra request headers; secret-looking values (X-Api-Key, Authorization)
    are masked for callers who may view postbacks but not change them. Checked by
    validate_postback_config."""

    def to_representation(self, value):
        request = self.context.get("request")
        if request is None or not request.user.has_perm("postbacks.change_postback"):
            return shown_header_list(value)
        return value


# validate_postback_config reads rendering.CONFIG_FIELDS (imported above) and these relations.
CONFIG_RELATIONS = ("offers", "conversion_types")


def drf_validation_error(exc: DjangoValidationError) -> serializers.ValidationError:
    """The same errors under the same field keys, in DRF's shape."""
    if not hasattr(exc, "error_dict"):
        return serializers.ValidationError({api_settings.NON_FIELD_ERRORS_KEY: exc.messages})
    errors = dict(exc.message_dict)
    if "__all__" in errors:
        errors[api_settings.NON_FIELD_ERRORS_KEY] = errors.pop("__all__")
    return serializers.ValidationError(errors)


class PostbackSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    conversion_types = serializers.SlugRelatedField(
        many=True,
        slug_field="code",
        queryset=ConversionType.objects.all(),
        allow_empty=False,
        help_text="Conversion type codes, e.g. sale, lead.",
    )
    statuses = serializers.ListField(
        child=StatusField(),
        allow_empty=False,
        help_text="Conversion statuses that fire this postback. CONVERSION_STATUS_* spellings "
        'and "declined" are accepted and stored as our values.',
    )
    currency = OptionalCurrencyField(
        required=False,
        help_text="Send amounts converted into this currency; null: the conversion's currency.",
    )
    status_map = StatusMapField(
        required=False,
        help_text='What {status} renders as, per status, e.g. {"approved": "1", "rejected": "2"}.',
    )
    warnings = serializers.SerializerMethodField(
        help_text="In the answer to a create or update: what will hold deliveries back, e.g. "
        "no exchange rate from a currency in use into `currency` (saved all the same); empty "
        "in listings."
    )

    headers = HeadersField(
        required=False,
        help_text='Extra request headers, e.g. [{"name": "X-Api-Key", "value": "..."}]; values '
        "may use placeholders. Secret-looking values are masked unless you may change postbacks.",
    )

    class Meta:
        model = Postback
        fields = [
            "id",
            "name",
            "affiliate",
            "scope",
            "offers",
            "conversion_types",
            "statuses",
            "currency",
            "method",
            "url",
            "body_format",
            "body_template",
            "status_map",
            "headers",
            "active",
            "created",
            "updated",
            "warnings",
        ]

    def validate_statuses(self, value):
        return list(dict.fromkeys(value))

    def to_representation(self, instance):
        data = super().to_representation(instance)
        request = self.context.get("request")
        if request is None or not request.user.has_perm("postbacks.change_postback"):
            # As on the admin's view-only page: secret-looking values (token=...) masked.
            for name in ("url", "body_template"):
                if data.get(name):
                    data[name] = mask(data[name])
        return data

    def validate(self, attrs):
        try:
            validation.validate_postback_config(self._config_values(attrs))
        except DjangoValidationError as exc:
            raise drf_validation_error(exc) from exc
        return attrs

    def _config_values(self, attrs) -> dict:
        """The postback's configuration after this write: new values over the stored ones."""
        values = {}
        for name in CONFIG_FIELDS:
            if name in attrs:
                values[name] = attrs[name]
            elif self.instance is not None:
                values[name] = getattr(self.instance, name)
            else:
                values[name] = Postback._meta.get_field(name).get_default()
        for name in CONFIG_RELATIONS:
            if name in attrs:
                values[name] = list(attrs[name])
            elif self.instance is not None:
                values[name] = list(getattr(self.instance, name).all())
            else:
                values[name] = []
        return values

    # The row and its offers/types are one write: never a postback without its scope.
    def create(self, validated_data):
        with transaction.atomic():
            return super().create(validated_data)

    def update(self, instance, validated_data):
        with transaction.atomic():
            return super().update(instance, validated_data)

    def get_warnings(self, instance) -> list[str]:
        # Only the answer to a create or an update warns (a listing stays one query per page).
        return missing_rate_warnings(instance) if getattr(self, "_saved", False) else []

    def save(self, **kwargs):
        self._saved = True
        return super().save(**kwargs)


class MaskedTextField(serializers.CharField):
    """Logged text shown with secret-looking parameter values masked (POSTBACK_MASK_SECRETS)."""

    def __init__(self, **kwargs):
        super().__init__(read_only=True, **kwargs)

    def to_representation(self, value):
        return mask(super().to_representation(value))


class DeliveryAttemptSerializer(serializers.ModelSerializer):
    url = MaskedTextField()
    error = MaskedTextField()

    class Meta:
        model = DeliveryAttempt
        fields = [
            "number",
            "started_at",
            "method",
            "url",
            "response_status",
            "duration_ms",
            "error",
        ]


class DeliverySerializer(serializers.ModelSerializer):
    delivery_id = serializers.UUIDField(source="uid", read_only=True)
    attempt_log = DeliveryAttemptSerializer(many=True, read_only=True, help_text="Newest first.")
    last_error = MaskedTextField()

    class Meta:
        model = Delivery
        fields = [
            "id",
            "delivery_id",
            "postback",
            "conversion",
            "status",
            "is_test",
            "state",
            "attempts",
            "next_attempt_at",
            "last_status_code",
            "last_duration_ms",
            "last_error",
            "created",
            "finished_at",
            "attempt_log",
        ]
