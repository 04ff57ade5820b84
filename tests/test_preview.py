"""Previews of a postback's configuration: the request it would send (sample or real
conversion) and the live preview's answer with unknown placeholders marked."""

import json
from urllib.parse import parse_qs, urlsplit

import pytest

from conversions.models import Conversion, ExchangeRate
from postbacks.preview import live_preview, parse_status_map, render_preview
from postbacks.rendering import RenderError
from tests.factories import ConversionFactory, postback_values

pytestmark = pytest.mark.django_db


def _json(template: str, **overrides):
    return postback_values(method="POST", body_format="json", body_template=template, **overrides)


def _text(segments) -> str:
    return "".join(s["text"] for s in segments)


def test_preview_renders_the_sample_conversion_without_touching_the_database(
    django_assert_num_queries,
):
    values = postback_values(
        url="https://t.example.com/cb?id={affS1}&p={payout}&s={status}&t={timestamp}",
        status_map={"approved": "1"},
    )
    with django_assert_num_queries(0):
        request = render_preview(values, allow_revenue=False)
    assert parse_qs(urlsplit(request.url).query) == {
        "id": ["AFF-CLICK-123"],
        "p": ["12.50"],
        "s": ["1"],
        "t": ["2026-11-25T14:03:09Z"],
    }
    assert not Conversion.objects.exists()


def test_preview_sample_amounts_are_in_the_postback_currency():
    values = postback_values(url="https://t.example.com/cb?p={payout}&c={currency}", currency="JPY")
    request = render_preview(values, allow_revenue=False)
    assert parse_qs(urlsplit(request.url).query) == {"p": ["13"], "c": ["JPY"]}


def test_preview_of_a_json_body_shows_every_placeholder_filled():
    template = '{"click": "{affS1}", "payout": {payout}, "revenue": {revenue}}'
    request = render_preview(_json(template), allow_revenue=True)
    assert json.loads(request.body) == {"click": "AFF-CLICK-123", "payout": 12.5, "revenue": 40}


def test_preview_reads_the_revenue_setting_by_default():
    request = render_preview(postback_values(url="https://t.example.com/cb?r={revenue}"))
    assert request.url == "https://t.example.com/cb?r="


def test_preview_for_a_real_conversion_uses_its_values():
    conversion = ConversionFactory(status="pending")
    values = postback_values(url="https://t.example.com/cb?id={affS1}&s={status}")
    request = render_preview(values, conversion, allow_revenue=False)
    query = parse_qs(urlsplit(request.url).query)
    assert query == {"id": [conversion.click.aff_s1], "s": ["pending"]}


def test_preview_for_a_real_conversion_reports_a_missing_rate():
    conversion = ConversionFactory(currency="USD")
    with pytest.raises(RenderError, match="No exchange rate from USD to EUR"):
        render_preview(postback_values(currency="EUR"), conversion, allow_revenue=False)
    assert not ExchangeRate.objects.exists()


# --- the live preview -----------------------------------------------------------------------


def test_live_preview_marks_an_unknown_placeholder_in_place_and_renders_the_rest():
    answer = live_preview(postback_values(url="https://t.example.com/cb?x={bogus}&p={payout}"))
    assert _text(answer["url"]) == "https://t.example.com/cb?x={bogus}&p=12.50"
    assert [s["text"] for s in answer["url"] if s["unknown"]] == ["{bogus}"]
    assert answer["unknown"] == ["{bogus}"] and answer["error"] == ""


def test_live_preview_lists_problems_with_the_request_settings_only():
    answer = live_preview(
        postback_values(currency="XYZ", statuses=[], scope=""), allow_revenue=False
    )
    assert answer["errors"] == ["'XYZ' is not an ISO 4217 currency code (for example USD, EUR)."]


def test_live_preview_explains_a_request_it_cannot_render():
    answer = live_preview(
        postback_values(url="https://{affS1}.example.com/cb"), allow_revenue=False
    )
    assert "host" in answer["error"] and answer["url"] == []


@pytest.mark.parametrize(
    ("typed", "parsed"),
    [("", {}), ("  ", {}), ('{"approved": "1"}', {"approved": "1"}), ("approved=1", "approved=1")],
)
def test_a_typed_status_map_is_parsed_or_left_for_validation_to_explain(typed, parsed):
    assert parse_status_map(typed) == parsed
