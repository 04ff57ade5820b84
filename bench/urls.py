from django.urls import path

from trackdesk.urls import urlpatterns as project_urls

from .bare import BareConversionBulkCreate, BareConversionCreate, bare_click

urlpatterns = [
    path("bench/bare-conversions/", BareConversionCreate.as_view()),
    path("bench/bare-conversions/bulk/", BareConversionBulkCreate.as_view()),
    path("bench/bare-click/<int:offer_id>/<int:affiliate_id>/", bare_click),
    *project_urls,
]
