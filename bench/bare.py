"""The baselines: the least a view can do for the same request. Each has the project's API
authentication, permission and throttle (DRF's defaults from settings) or none (the click), and
inserts with no look-ups: no validation of the ids, no uniqueness check, no history, no matching,
no queue.
"""

from django.http import HttpResponseRedirect
from django.views.decorators.http import require_GET
from rest_framework.response import Response
from rest_framework.views import APIView

from conversions.models import Click, Conversion


def _conversion(item: dict) -> Conversion:
    return Conversion(
        affiliate_id=item["affiliate"],
        offer_id=item["offer"],
        conversion_type_id=item["conversion_type"],
        transaction_id=item["transaction_id"],
        currency="USD",
    )


class BareConversionCreate(APIView):
    """One INSERT of the conversion row; answers its id."""

    queryset = Conversion.objects.none()  # for the model permission (add conversion)

    def post(self, request):
        conversion = _conversion(request.data)
        conversion.save(force_insert=True)
        return Response({"id": str(conversion.id)}, status=201)


class BareConversionBulkCreate(APIView):
    """`bulk_create` of the same rows in one transaction; answers how many."""

    queryset = Conversion.objects.none()

    def post(self, request):
        rows = [_conversion(item) for item in request.data["conversions"]]
        created = Conversion.objects.bulk_create(rows)
        return Response({"created": len(created)}, status=201)


@require_GET
def bare_click(request, offer_id: int, affiliate_id: int):
    """One INSERT of the click row, then the redirect with its cid (the landing page fixed)."""
    click = Click.objects.create(offer_id=offer_id, affiliate_id=affiliate_id)
    return HttpResponseRedirect(f"https://shop.example.com/?cid={click.cid}")
