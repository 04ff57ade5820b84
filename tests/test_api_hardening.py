"""API hardening: a token on every view but the public two, throttling, body size, strictness."""

import json

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.throttling import SimpleRateThrottle

from conversions.views import ConversionPixelView
from trackdesk.permissions import ModelPermissions, RequiredPermissions

from .factories import ClickFactory, OfferFactory

pytestmark = pytest.mark.django_db

# Public by design: the advertiser's pixel (guarded by the offer's token). The tracking link
# /t/ is a plain Django view, not an API view.
PUBLIC_API_VIEWS = {ConversionPixelView}
# Each refuses a caller without a login or token; which permission each view needs on top:
# tests/test_api_permissions.py.
PROTECTING = (IsAuthenticated, ModelPermissions, RequiredPermissions)


def api_views(patterns=None, prefix=""):
    """(route, DRF view class) for every URL pattern served by a DRF view."""
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            yield from api_views(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            view = getattr(pattern.callback, "cls", None) or getattr(
                pattern.callback, "view_class", None
            )
            if view is not None and hasattr(view, "permission_classes"):
                yield prefix + str(pattern.pattern), view


def test_every_api_view_requires_authentication_except_the_pixel():
    views = list(api_views())
    assert len(views) > 10
    for route, view in views:
        permissions = set(view.permission_classes)
        if view in PUBLIC_API_VIEWS:
            assert AllowAny in permissions, route
        else:
            protected = any(issubclass(cls, PROTECTING) for cls in permissions)
            assert protected, f"{route} ({view.__name__}) is not protected"
            assert view.authentication_classes, route


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/conversions/",
        "/api/v1/affiliates/",
        "/api/v1/offers/",
        "/api/v1/postbacks/",
        "/api/v1/deliveries/",
        "/api/v1/exchange-rates/",
        "/api/schema/",
        "/api/docs/",
    ],
)
def test_api_without_token_answers_401(anon_client, url):
    assert anon_client.get(url).status_code == 401


def test_wrong_token_answers_401(anon_client):
    anon_client.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    assert anon_client.get("/api/v1/conversions/").status_code == 401


def test_schema_is_served_with_a_token(api_client):
    assert api_client.get("/api/schema/").status_code == 200


def test_pixel_is_public_but_needs_the_offers_token(anon_client):
    click = ClickFactory()
    url = f"/tracking/conversion/v1?cid={click.cid}&conversionTypeCode=sale"
    assert anon_client.get(url).status_code == 403
    assert anon_client.get(f"{url}&token={click.offer.pixel_secret}").status_code == 201


@pytest.fixture
def fresh_throttle_cache(monkeypatch):
    """Throttle counts in a private cache: the shared one may be Redis used by other runs."""
    from django.core.cache.backends.locmem import LocMemCache

    monkeypatch.setattr(SimpleRateThrottle, "cache", LocMemCache("throttle-test", {}))


def test_api_throttles_a_token_user_over_its_rate(api_client, fresh_throttle_cache, monkeypatch):
    monkeypatch.setitem(SimpleRateThrottle.THROTTLE_RATES, "user", "3/min")
    codes = [api_client.get("/api/v1/affiliates/").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    response = api_client.get("/api/v1/affiliates/")
    assert "Retry-After" in response.headers


def test_pixel_is_throttled_per_client_address(anon_client, fresh_throttle_cache, monkeypatch):
    monkeypatch.setitem(SimpleRateThrottle.THROTTLE_RATES, "anon", "2/min")
    url = "/tracking/conversion/v1?cid=nope&conversionTypeCode=sale&token=x"
    codes = [anon_client.get(url).status_code for _ in range(3)]
    assert codes == [403, 403, 429]


def test_oversized_json_body_answers_413_before_parsing(api_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = json.dumps({"conversion_type": "sale", "customer_id": "x" * 2000})
    response = api_client.post("/api/v1/conversions/", body, content_type="application/json")
    assert response.status_code == 413
    assert "1000 bytes" in response.json()["detail"]


def test_body_within_the_limit_is_processed(api_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = api_client.post("/api/v1/conversions/", {"cid": "nope"}, format="json")
    assert response.status_code == 400


def test_conversion_with_an_unknown_field_is_refused_naming_it(api_client):
    click = ClickFactory()
    data = {"cid": click.cid, "conversion_type": "sale", "payuot": "10.00"}
    response = api_client.post("/api/v1/conversions/", data, format="json")
    assert response.status_code == 400
    assert "Unknown field" in response.json()["payuot"][0]


def test_status_change_with_an_unknown_field_is_refused(api_client):
    click = ClickFactory()
    created = api_client.post(
        "/api/v1/conversions/", {"cid": click.cid, "conversion_type": "sale"}, format="json"
    ).json()
    response = api_client.patch(
        f"/api/v1/conversions/{created['id']}/", {"statsu": "approved"}, format="json"
    )
    assert response.status_code == 400
    assert list(response.json()) == ["statsu"]


def test_config_write_with_an_unknown_field_is_refused(api_client):
    response = api_client.post("/api/v1/affiliates/", {"name": "A", "emial": "x"}, format="json")
    assert response.status_code == 400
    assert "emial" in response.json()


def test_read_only_fields_sent_back_are_accepted(api_client):
    affiliate = api_client.post("/api/v1/affiliates/", {"name": "A"}, format="json").json()
    affiliate["name"] = "B"
    response = api_client.put(f"/api/v1/affiliates/{affiliate['id']}/", affiliate, format="json")
    assert response.status_code == 200


def test_percent_sign_in_a_bad_status_filter_answers_400(api_client):
    response = api_client.get("/api/v1/conversions/", {"status": "%Wey"})
    assert response.status_code == 400
    assert "%Wey" in response.json()["status"][0]


def test_id_filter_beyond_64_bits_answers_400(api_client):
    response = api_client.get("/api/v1/conversions/", {"affiliate": 2**70})
    assert response.status_code == 400


def test_created_filter_with_a_far_offset_works_on_every_database(api_client):
    # PostgreSQL refuses a +21:40 offset; the filter compares in UTC.
    moment = "1959-06-08T01:01:02+21:40"
    response = api_client.get("/api/v1/conversions/", {"created_after": moment})
    assert response.status_code == 200


def test_created_filter_out_of_range_answers_400(api_client):
    moment = "0001-01-01T00:00:00+05:00"
    response = api_client.get("/api/v1/conversions/", {"created_after": moment})
    assert response.status_code == 400


def test_unknown_api_url_answers_json_404(api_client):
    response = api_client.get("/api/v1/affiliates/1.5/")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_offer_patch_with_a_misspelt_field_is_refused(api_client):
    offer = OfferFactory()
    response = api_client.patch(f"/api/v1/offers/{offer.pk}/", {"actve": False}, format="json")
    assert response.status_code == 400
