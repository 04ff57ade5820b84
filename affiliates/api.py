"""API for affiliates and offers."""

from rest_framework import viewsets

from trackdesk.api import ProtectedDestroyMixin

from .models import Affiliate, Offer
from .serializers import AffiliateSerializer, OfferSerializer


class AffiliateViewSet(ProtectedDestroyMixin, viewsets.ModelViewSet):
    queryset = Affiliate.objects.all()
    serializer_class = AffiliateSerializer


class OfferViewSet(ProtectedDestroyMixin, viewsets.ModelViewSet):
    queryset = Offer.objects.all()
    serializer_class = OfferSerializer
