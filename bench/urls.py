from django.urls import path

from trackdesk.urls import urlpatterns as project_urls

from .bare import BareConversionCreate

urlpatterns = [
    path("bench/bare-conversions/", BareConversionCreate.as_view()),
    *project_urls,
]
