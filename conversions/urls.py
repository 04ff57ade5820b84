from django.urls import path

from . import views

urlpatterns = [
    path("t/<int:offer_id>/<int:affiliate_id>/", views.track_click, name="track-click"),
    path(
        "tracking/conversion/v1",
        views.ConversionPixelView.as_view(),
        name="conversion-pixel",
    ),
]
