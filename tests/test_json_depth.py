"""JSON input nested deeper than the limit gets a 400 naming the limit, on every API endpoint."""

import pytest
from django import forms

from trackdesk.parsers import MAX_JSON_DEPTH, JSONDecoder, JSONTooDeep, loads

pytestmark = pytest.mark.django_db

TOO_DEEP = "JSON nested deeper than 32 levels; at most 32 are allowed."
ENDPOINTS = [
    "/api/v1/conversions/",
    "/api/v1/conversions/bulk/",
    "/api/v1/exchange-rates/",
    "/api/v1/postbacks/",
    "/api/v1/offers/",
]


def nested(depth: int) -> str:
    """An object whose `cid` holds lists `depth` levels deep in all (the object is one)."""
    return '{"cid": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}"


@pytest.mark.parametrize("url", ENDPOINTS)
@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 50_000])
def test_json_nested_deeper_than_the_limit_is_a_400_naming_it(api_client, url, depth):
    response = api_client.post(url, nested(depth), content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"detail": TOO_DEEP}


def test_json_nested_up_to_the_limit_is_read(api_client):
    response = api_client.post("/api/v1/conversions/", nested(32), content_type="application/json")
    assert response.status_code == 400
    assert "cid" in response.json()  # a field error: the body was read


def test_the_limit_counts_levels_not_size():
    wide = {"items": [{"a": [1, 2, {"b": None}]} for _ in range(1000)]}
    assert loads(str(wide).replace("'", '"').replace("None", "null")) == wide
    with pytest.raises(JSONTooDeep):
        loads("[" * 33 + "]" * 33)
    assert loads("[" * 32 + "]" * 32) is not None


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 50_000])
def test_a_form_json_field_with_the_decoder_reports_deep_json_as_invalid(depth):
    field = forms.JSONField(decoder=JSONDecoder)
    with pytest.raises(forms.ValidationError):
        field.clean("[" * depth + "]" * depth)
    assert field.clean('{"approved": "1"}') == {"approved": "1"}


def test_the_postback_forms_status_value_row_takes_deep_json_as_too_long_text():
    # The form has one text row per status (no JSON to parse): deep JSON is just long text.
    from postbacks.admin.forms import PostbackForm
    from tests.factories import AffiliateFactory, postback_form_data

    deep = "[" * 50_000 + "]" * 50_000
    form = PostbackForm(data=postback_form_data(AffiliateFactory(), status_value_approved=deep))

    assert not form.is_valid()
    assert "status_value_approved" in form.errors


def test_the_live_preview_explains_a_deep_status_map_instead_of_crashing(admin_client):
    from tests.factories import AffiliateFactory

    response = admin_client.post(
        "/admin/postbacks/postback/preview/",
        {
            "affiliate": AffiliateFactory().pk,
            "url": "https://t.example.com/pb?c={affS1}",
            "method": "GET",
            "status_map": "[" * 50_000 + "]" * 50_000,
        },
    )

    assert response.status_code in (200, 400)
    assert "status map" in response.content.decode().lower()
