"""API-wide behaviour: JSON errors for unknown URLs, and strict input fields."""

from django.http import JsonResponse
from django.views import defaults
from rest_framework import serializers


def page_not_found(request, exception):
    """JSON under /api/ (clients parse it), Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Server error."}, status=500)
    return defaults.server_error(request)


class StrictFieldsMixin:
    """Refuse input fields the serializer does not know (typos would otherwise be dropped).

    Read-only fields count as known, so a client may send back what it read.
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
        return super().to_internal_value(data)
