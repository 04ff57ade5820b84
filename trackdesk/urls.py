from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("portal/", include("portal.urls")),
    path("api/v1/", include("conversions.api_urls")),
    path("api/v1/", include("affiliates.api_urls")),
    path("api/v1/", include("postbacks.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # A page, not an endpoint: drf-spectacular's view answers OPTIONS with a 500 (no template).
    path(
        "api/docs/",
        SpectacularSwaggerView.as_view(url_name="schema", http_method_names=["get", "head"]),
        name="swagger-ui",
    ),
    path("", include("conversions.urls")),
]

handler404 = "trackdesk.api.page_not_found"
handler500 = "trackdesk.api.server_error"

admin.site.site_header = "Affiliate postback back office"
admin.site.site_title = "Postback back office"
admin.site.index_title = "Affiliates, conversions and postbacks"
# The back office has no public site to view: no "View site" link in the admin's header.
admin.site.site_url = None
