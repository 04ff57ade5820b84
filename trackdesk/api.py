"""API behaviour every app shares: JSON errors for unknown URLs, strict input fields, secret
fields (readable with change permission only), the currency field, and the 409 instead of
deleting a row that is still in use. Who may call what: trackdesk/permissions.py."""

from contextvars import ContextVar

from django.contrib.auth import get_permission_codename
from django.db import models, transaction
from django.db.models import ProtectedError
from django.http import JsonResponse
from django.views import defaults
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException
from rest_framework.fields import empty
from rest_framework.response import Response

from trackdesk.currencies import validate_currency


def page_not_found(request, exception):
    """JSON under /api/ (clients parse it), Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Server error."}, status=500)
    return defaults.server_error(request)


class SecretFieldsMixin:
    """Leave `secret_fields` out of the answer unless the caller may change the model.

    A secret lets whoever holds it act for the row (an offer's pixel secret records conversions
    for that offer), so viewing the row is not enough to read it. No request, no secret.
    """

    secret_fields: tuple[str, ...] = ()

    def get_fields(self):
        fields = super().get_fields()
        request = self.context.get("request")
        opts = self.Meta.model._meta
        perm = f"{opts.app_label}.{get_permission_codename('change', opts)}"
        if request is None or not request.user.has_perm(perm):
            for name in self.secret_fields:
                fields.pop(name, None)
        return fields


class StrictFieldsMixin:
    """Refuse input fields the serializer does not know (typos would otherwise be dropped).

    Read-only fields count as known, so a client may send back what it read. Optional fields
    the input leaves out are not run at all: without a default each would only say "skip me",
    with one it would only return it (set here directly). A conversion names a handful of its
    twenty-odd fields, so this was half of validating one.
    """

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(str(key) for key in data if key not in self.fields)
            if unknown:
                raise serializers.ValidationError(
                    {
                        key: [f"Unknown field. Known fields: {', '.join(self.fields)}."]
                        for key in unknown
                    }
                )
        given = data.keys() if type(data) is dict else None
        token = _given.set(given)
        try:
            validated = super().to_internal_value(data)
        finally:
            _given.reset(token)
        if given is not None:  # the defaults of the fields left out, as DRF would give them
            for field, run in self._field_plan:
                if run is _IN_PLACE and field.field_name not in given:
                    self.set_value(validated, field.source_attrs, field.get_default())
        return validated

    @property
    def _writable_fields(self):
        given = _given.get()
        for field, run in self._field_plan:
            if run is _ALWAYS or given is None or field.field_name in given:
                yield field

    @property
    def _field_plan(self):
        """The writable fields in order, each with when it runs: always; only when given (left
        out, DRF would only skip it); or only when given and otherwise set to its default in
        place. Decided once per serializer instance.

        A left-out field's default is set without running the field when this is no partial
        update (where DRF gives none) and no validate_<field> method would see it."""
        plan = self.__dict__.get("_field_plan_cache")
        if plan is None:
            partial = getattr(self.root, "partial", False)
            plan = []
            for field in super()._writable_fields:
                if field.required:
                    run = _ALWAYS
                elif field.default is empty:
                    run = _WHEN_GIVEN
                elif partial or hasattr(self, f"validate_{field.field_name}"):
                    run = _ALWAYS
                else:
                    run = _IN_PLACE
                plan.append((field, run))
            self.__dict__["_field_plan_cache"] = plan
        return plan


_ALWAYS, _WHEN_GIVEN, _IN_PLACE = "always", "when given", "when given, else its default in place"


# The keys of the input being validated (a context variable: one serializer instance may be
# shared by a process's requests, and nested serializers validate inside their parent).
_given: ContextVar = ContextVar("given_input_keys", default=None)


class CurrencyField(serializers.CharField):
    """An ISO 4217 code, accepted in any case and stored upper-cased."""

    def __init__(self, **kwargs):
        kwargs["validators"] = [*kwargs.get("validators", []), validate_currency]
        kwargs.setdefault("help_text", "ISO 4217 currency code, e.g. USD or EUR.")
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        return super().to_internal_value(data).upper()


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "This object is in use and cannot be changed this way."
    default_code = "conflict"


def referring_kinds(instance: models.Model) -> list[str]:
    """Plural names of the rows that refer to `instance` and would block or lose it on delete.

    Protected foreign keys block the delete; many-to-many links would silently drop the
    instance from another row's configuration (an offer from a postback's scope), so they count.
    """
    kinds = []
    for rel in instance._meta.related_objects:
        if not (rel.many_to_many or rel.on_delete is models.PROTECT):
            continue
        related = rel.related_model
        if related._default_manager.filter(**{rel.field.name: instance}).exists():
            kinds.append(str(related._meta.verbose_name_plural))
    return kinds


class ProtectedDestroyMixin:
    """Answer 409 with an actionable message instead of deleting a row that is still in use."""

    deactivate_hint = 'Deactivate it instead: PATCH {"active": false}.'

    @extend_schema(
        responses={
            204: None,
            409: OpenApiResponse(description="Other rows refer to it; deactivate it instead."),
        }
    )
    def destroy(self, request, *args, **kwargs):
        instance = self.get_object()
        name = instance._meta.verbose_name
        kinds = referring_kinds(instance)
        if kinds:
            raise Conflict(
                f"This {name} cannot be deleted: the {', '.join(kinds)} refer to it. "
                f"{self.deactivate_hint}"
            )
        try:
            with transaction.atomic():
                instance.delete()
        except ProtectedError as exc:  # a referring row was added since the check above
            raise Conflict(
                f"This {name} cannot be deleted: other rows refer to it. {self.deactivate_hint}"
            ) from exc
        return Response(status=status.HTTP_204_NO_CONTENT)
