"""API for affiliates and offers, and the refusal to delete rows other rows still refer to."""

from django.db import models, transaction
from django.db.models import ProtectedError
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.exceptions import APIException
from rest_framework.response import Response

from .models import Affiliate, Offer
from .serializers import AffiliateSerializer, OfferSerializer


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
                f"This {name} cannot be deleted: {', '.join(kinds)} refer to it. "
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


class AffiliateViewSet(ProtectedDestroyMixin, viewsets.ModelViewSet):
    queryset = Affiliate.objects.all()
    serializer_class = AffiliateSerializer


class OfferViewSet(ProtectedDestroyMixin, viewsets.ModelViewSet):
    queryset = Offer.objects.all()
    serializer_class = OfferSerializer
