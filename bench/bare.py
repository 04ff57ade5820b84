"""The ingest baseline: the plainest DRF create of a conversion row (ModelSerializer +
CreateAPIView, same auth and parser), without our validation, history, matching or queue."""

from rest_framework import generics, serializers

from conversions.models import Conversion


class BareConversionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Conversion
        fields = [
            "id",
            "affiliate",
            "offer",
            "conversion_type",
            "transaction_id",
            "payout",
            "currency",
        ]


class BareConversionCreate(generics.CreateAPIView):
    serializer_class = BareConversionSerializer
