"""Rendering a postback: placeholder values, encoding, amounts, methods and bodies, currencies."""

import json
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import time_machine

from conversions.models import ExchangeRate
from postbacks.models import TrackingSettings
from postbacks.placeholders import CATALOG, lookup, valid_names
from postbacks.rendering import RenderError, find_placeholders, format_amount, render_request
from tests.factories import (
    AffiliateFactory,
    ClickFactory,
    ConversionFactory,
    OfferFactory,
    PostbackFactory,
    conversion_type,
)

pytestmark = pytest.mark.django_db

CREATED = datetime(2026, 11, 25, 14, 3, 9, 654321, tzinfo=UTC)
DELIVERY_UID = uuid.UUID("2a6c9e0f-4b7d-4f1e-9c3a-8d5e7f1b2c40")
# Every character that could change a URL's structure, a form body or a JSON string.
NASTY = 'a&b=c#frag?x=/../y %41%2F+1 ünï € {payout} "q" \\ \r\nX-Injected: yes'


def _render_with(conversion, url, allow_revenue=False, status="approved", **fields):
    postback = PostbackFactory.build(url=url, **fields)
    return render_request(
        postback, conversion, status=status, delivery_uid=DELIVERY_UID, allow_revenue=allow_revenue
    )


def _query(url: str) -> dict:
    return parse_qs(urlsplit(url).query, keep_blank_values=True, strict_parsing=True)


@pytest.fixture
def full_conversion():
    """A conversion with every field a placeholder reads filled in."""
    click = ClickFactory(
        aff_s1="click-1", aff_s2="sub-2", aff_s3="sub-3", aff_s4="sub-4", aff_s5="sub-5"
    )
    with time_machine.travel(CREATED, tick=False):
        return ConversionFactory(
            click=click,
            conversion_type=conversion_type("lead"),
            transaction_id="ORDER-1",
            payout=Decimal("12.5"),
            revenue=Decimal("40"),
            sale_amount=Decimal("99.900000"),
            currency="USD",
            external_cid="ext-9",
            adv_s1="adv-1",
            adv_s2="adv-2",
            adv_s3="adv-3",
            adv_s4="adv-4",
            adv_s5="adv-5",
            customer_id="cust-7",
        )


def _expected_values(conversion) -> dict:
    click = conversion.click
    return {
        "affS1": "click-1",
        "affS2": "sub-2",
        "affS3": "sub-3",
        "affS4": "sub-4",
        "affS5": "sub-5",
        "conversionId": str(conversion.id),
        "conversionType": "lead",
        "status": "1",
        "timestamp": "2026-11-25T14:03:09Z",
        "payout": "12.50",
        "currency": "USD",
        "cid": click.cid,
        "externalCid": "ext-9",
        "revenue": "40.00",
        "saleAmount": "99.90",
        "transactionId": "ORDER-1",
        "offerId": str(conversion.offer_id),
        "affiliateId": str(conversion.affiliate_id),
        "advS1": "adv-1",
        "advS2": "adv-2",
        "advS3": "adv-3",
        "advS4": "adv-4",
        "advS5": "adv-5",
        "customerId": "cust-7",
        "deliveryId": str(DELIVERY_UID),
    }


# --- the catalog ----------------------------------------------------------------------------


def test_every_catalog_placeholder_renders_its_value(full_conversion):
    expected = _expected_values(full_conversion)
    assert [p.name for p in CATALOG] == list(expected)  # a new placeholder needs a case here
    url = "https://tracker.example.com/cb?" + "&".join(f"{name}={{{name}}}" for name in expected)
    request = _render_with(full_conversion, url, allow_revenue=True, status_map={"approved": "1"})
    assert {key: values[0] for key, values in _query(request.url).items()} == expected


def test_aliases_and_any_case_render_like_the_name(full_conversion):
    url = (
        "https://t.example.com/cb?a={aff_s1}&b={AFFS1}&c={affs1}&d={click_id}&e={sale_amount}"
        "&f={conversion_id}&g={TRANSACTION_ID}&h={delivery_id}&i={adv_s2}&j={external_cid}"
    )
    query = _query(_render_with(full_conversion, url, allow_revenue=True).url)
    assert query == {
        "a": ["click-1"],
        "b": ["click-1"],
        "c": ["click-1"],
        "d": [full_conversion.click.cid],
        "e": ["99.90"],
        "f": [str(full_conversion.id)],
        "g": ["ORDER-1"],
        "h": [str(DELIVERY_UID)],
        "i": ["adv-2"],
        "j": ["ext-9"],
    }


def test_lookup_resolves_names_aliases_and_case_to_one_entry():
    assert lookup("affS1") is lookup("AFF_S1") is lookup("affs1")
    assert lookup("click_id").name == "cid"
    assert lookup("aff_sub") is None


def test_no_two_placeholders_share_a_spelling():
    spellings = [s.lower() for p in CATALOG for s in (p.name, *p.aliases)]
    assert len(spellings) == len(set(spellings))


def test_only_revenue_and_sale_amount_are_gated():
    assert {p.name for p in CATALOG if p.gated} == {"revenue", "saleAmount"}
    assert {p.name for p in CATALOG if p.kind == "amount"} == {"payout", "revenue", "saleAmount"}


def test_valid_names_lists_every_placeholder_in_braces():
    assert valid_names().startswith("{affS1}, {affS2}")
    assert all("{" + p.name + "}" in valid_names() for p in CATALOG)


def test_conversion_without_click_renders_click_values_empty():
    conversion = ConversionFactory(click=None, affiliate=AffiliateFactory(), offer=OfferFactory())
    url = "https://t.example.com/cb?s1={affS1}&cid={cid}&p={payout}"
    assert _query(_render_with(conversion, url).url) == {"s1": [""], "cid": [""], "p": ["12.50"]}


def test_status_is_the_event_status_not_the_conversion_status(full_conversion):
    url = "https://t.example.com/cb?s={status}"
    assert _query(_render_with(full_conversion, url, status="rejected").url) == {"s": ["rejected"]}


def test_status_map_translates_mapped_statuses_and_passes_others_through(full_conversion):
    url = "https://t.example.com/cb?s={status}"
    status_map = {"approved": "1", "rejected": "2"}
    approved = _render_with(full_conversion, url, status="approved", status_map=status_map)
    pending = _render_with(full_conversion, url, status="pending", status_map=status_map)
    assert _query(approved.url) == {"s": ["1"]}
    assert _query(pending.url) == {"s": ["pending"]}


# --- placeholder syntax ---------------------------------------------------------------------


def test_find_placeholders_lists_names_once_in_order():
    assert find_placeholders("{b}/{a}?x={b}&y={aff_s1}") == ["b", "a", "aff_s1"]


def test_find_placeholders_ignores_json_braces():
    assert find_placeholders('{"a": {"b": [1, {}]}, "c": "{payout}"}') == ["payout"]


def test_unknown_placeholder_is_refused_when_rendering(full_conversion):
    with pytest.raises(RenderError, match=r"Unknown placeholder \{aff_sub\}.*\{affS1\}"):
        _render_with(full_conversion, "https://t.example.com/cb?id={aff_sub}")


def test_placeholder_in_host_is_refused_when_rendering(full_conversion):
    with pytest.raises(RenderError, match="host"):
        _render_with(full_conversion, "https://{affS1}.example.com/cb")


# --- URL encoding ---------------------------------------------------------------------------


@pytest.fixture
def nasty_conversion():
    click = ClickFactory(aff_s1=NASTY, aff_s2="#x")
    return ConversionFactory(click=click, transaction_id="tx/?&=#")


def test_values_cannot_add_parameters_or_change_path_host_or_fragment(nasty_conversion):
    url = "https://tracker.example.com/cb/{affS1}?clickid={affS1}&tx={transactionId}#{affS1}"
    rendered = urlsplit(_render_with(nasty_conversion, url).url)
    assert (rendered.scheme, rendered.netloc) == ("https", "tracker.example.com")
    assert rendered.path.count("/") == 2 and unquote(rendered.path) == "/cb/" + NASTY
    assert _query(rendered.geturl()) == {"clickid": [NASTY], "tx": ["tx/?&=#"]}
    assert unquote(rendered.fragment) == NASTY


def test_rendered_url_has_no_raw_space_newline_or_brace(nasty_conversion):
    url = _render_with(nasty_conversion, "https://t.example.com/cb?id={affS1}").url
    assert not any(char in url for char in ' \r\n{}"ü')


def test_values_are_not_expanded_again(nasty_conversion):
    url = _render_with(nasty_conversion, "https://t.example.com/cb?id={affS1}&p={payout}").url
    assert _query(url)["id"] == [NASTY]  # the "{payout}" inside the value stays literal


def test_missing_values_render_empty(full_conversion):
    full_conversion.customer_id = ""
    url = "https://t.example.com/cb?c={customerId}&r={revenue}"
    assert _query(_render_with(full_conversion, url).url) == {"c": [""], "r": [""]}


# --- revenue gating -------------------------------------------------------------------------


def test_revenue_renders_empty_while_the_setting_is_off(full_conversion):
    url = "https://t.example.com/cb?r={revenue}&s={saleAmount}&p={payout}"
    query = _query(_render_with(full_conversion, url, allow_revenue=False).url)
    assert query == {"r": [""], "s": [""], "p": ["12.50"]}


def test_revenue_renders_when_the_setting_is_on(full_conversion):
    url = "https://t.example.com/cb?r={revenue}&s={saleAmount}"
    query = _query(_render_with(full_conversion, url, allow_revenue=True).url)
    assert query == {"r": ["40.00"], "s": ["99.90"]}


def test_revenue_gate_reads_the_tracking_setting_by_default(full_conversion):
    postback = PostbackFactory.build(url="https://t.example.com/cb?r={revenue}")
    off = render_request(postback, full_conversion, status="approved")
    TrackingSettings.objects.update_or_create(pk=1, defaults={"allow_revenue_parameters": True})
    on = render_request(postback, full_conversion, status="approved")
    assert (_query(off.url), _query(on.url)) == ({"r": [""]}, {"r": ["40.00"]})


def test_gated_revenue_is_null_in_a_json_body_while_off(full_conversion):
    request = _render_with(
        full_conversion,
        "https://t.example.com/cb",
        method="POST",
        body_format="json",
        body_template='{"revenue": {revenue}, "quoted": "{revenue}"}',
    )
    assert json.loads(request.body) == {"revenue": None, "quoted": ""}


# --- amounts --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("12.5", "USD", "12.50"),
        ("0.125", "USD", "0.125"),
        ("1500.000000", "JPY", "1500"),
        ("12.500000", "USD", "12.50"),
        ("12.345678", "USD", "12.345678"),
        ("1E+3", "USD", "1000.00"),
        ("0E-6", "USD", "0.00"),
        ("0.1", "KWD", "0.100"),
        ("0.0000001", "EUR", "0.0000001"),
        ("123456789012.123456", "USD", "123456789012.123456"),
    ],
)
def test_amounts_are_plain_decimals_with_at_least_the_minor_unit(amount, currency, expected):
    assert format_amount(Decimal(amount), currency) == expected


def test_stored_amount_renders_with_the_minor_unit(full_conversion):
    full_conversion.refresh_from_db()  # the database hands back 12.500000
    url = "https://t.example.com/cb?p={payout}"
    assert _query(_render_with(full_conversion, url).url) == {"p": ["12.50"]}


# --- methods and bodies ---------------------------------------------------------------------


def test_get_sends_no_body_and_no_headers(full_conversion):
    request = _render_with(full_conversion, "https://t.example.com/cb?id={affS1}")
    assert (request.method, request.body, request.content_type, request.headers) == (
        "GET",
        "",
        "",
        {},
    )


def test_post_form_renders_the_body_template_form_encoded(nasty_conversion):
    request = _render_with(
        nasty_conversion,
        "https://t.example.com/cb?static=1",
        method="POST",
        body_format="form",
        body_template="click={affS1}&amount={payout}&src=literal",
    )
    assert request.url == "https://t.example.com/cb?static=1"
    assert request.content_type == "application/x-www-form-urlencoded"
    assert parse_qs(request.body, strict_parsing=True) == {
        "click": [NASTY],
        "amount": ["12.50"],
        "src": ["literal"],
    }


def test_post_form_encodes_spaces_as_plus(full_conversion):
    full_conversion.click.aff_s1 = "a b&c"
    request = _render_with(
        full_conversion,
        "https://t.example.com/cb",
        method="POST",
        body_format="form",
        body_template="id={affS1}",
    )
    assert request.body == "id=a+b%26c"


def test_post_form_without_template_moves_the_query_into_the_body(nasty_conversion):
    request = _render_with(
        nasty_conversion,
        "https://t.example.com/cb/{affS2}?clickid={affS1}&amount={payout}",
        method="POST",
        body_format="form",
        body_template="",
    )
    assert request.url == "https://t.example.com/cb/%23x"
    assert parse_qs(request.body, strict_parsing=True) == {"clickid": [NASTY], "amount": ["12.50"]}
    assert request.content_type == "application/x-www-form-urlencoded"


def _json_request(conversion, body_template, **options):
    return _render_with(
        conversion,
        "https://t.example.com/cb",
        method="POST",
        body_format="json",
        body_template=body_template,
        **options,
    )


def test_post_json_renders_strings_escaped_and_literals_typed(full_conversion):
    template = (
        '{"click": "{affS1}", "note": "tx {transactionId} for {payout}", "payout": {payout},'
        ' "id": {transactionId}, "ext": {externalCid}, "nested": {"offer": {offerId}}}'
    )
    full_conversion.external_cid = ""
    request = _json_request(full_conversion, template)
    assert request.content_type == "application/json"
    assert '"payout": 12.50' in request.body
    assert json.loads(request.body, parse_float=Decimal) == {
        "click": "click-1",
        "note": "tx ORDER-1 for 12.50",
        "payout": Decimal("12.50"),
        "id": "ORDER-1",
        "ext": None,
        "nested": {"offer": str(full_conversion.offer_id)},
    }


def test_post_json_missing_values_are_null_as_literals_and_empty_in_strings():
    conversion = ConversionFactory(
        click=None, affiliate=AffiliateFactory(), offer=OfferFactory(), payout=None
    )
    template = '{"a": {affS1}, "b": "{affS1}", "p": {payout}, "q": "{payout}"}'
    assert json.loads(_json_request(conversion, template).body) == {
        "a": None,
        "b": "",
        "p": None,
        "q": "",
    }


def test_post_json_escapes_quotes_backslashes_and_newlines(nasty_conversion):
    template = '{"inside": "<{affS1}>", "literal": {affS1}}'
    body = json.loads(_json_request(nasty_conversion, template).body)
    assert body == {"inside": f"<{NASTY}>", "literal": NASTY}


def test_post_json_escaped_quote_keeps_the_placeholder_inside_the_string(full_conversion):
    template = r'{"a": "say \"{affS1}\" twice", "b": "\\", "c": {affS1}}'
    body = json.loads(_json_request(full_conversion, template).body)
    assert body == {"a": 'say "click-1" twice', "b": "\\", "c": "click-1"}


# --- currencies -----------------------------------------------------------------------------


def _rate(base, quote, rate, valid_on=date(2026, 11, 24)):
    ExchangeRate.objects.create(base=base, quote=quote, rate=Decimal(rate), valid_on=valid_on)


def _conversion_in(currency, payout):
    with time_machine.travel(CREATED, tick=False):
        return ConversionFactory(currency=currency, payout=Decimal(payout))


def _payout(conversion, currency, **options):
    url = "https://t.example.com/cb?p={payout}&c={currency}"
    return _query(_render_with(conversion, url, currency=currency, **options).url)


def test_amount_is_converted_with_a_direct_rate_and_rounded_to_cents():
    _rate("EUR", "USD", "1.0005")
    # 10.005 rounds half up to 10.01 (half-even would give 10.00).
    assert _payout(_conversion_in("EUR", "10.00"), "USD") == {"p": ["10.01"], "c": ["USD"]}


def test_amount_is_converted_with_the_inverse_rate():
    _rate("EUR", "USD", "1.25")
    assert _payout(_conversion_in("USD", "10.00"), "EUR") == {"p": ["8.00"], "c": ["EUR"]}


def test_amount_is_converted_across_the_ecb_base():
    _rate("EUR", "USD", "1.25")
    _rate("EUR", "GBP", "0.85")
    assert _payout(_conversion_in("USD", "10.00"), "GBP") == {"p": ["6.80"], "c": ["GBP"]}


def test_converted_yen_has_no_decimals():
    _rate("EUR", "JPY", "178.93")
    # 12.34 × 178.93 = 2207.9962
    assert _payout(_conversion_in("EUR", "12.34"), "JPY") == {"p": ["2208"], "c": ["JPY"]}


def test_converted_dinar_has_three_decimals_rounded_half_up():
    _rate("EUR", "KWD", "0.35725")
    assert _payout(_conversion_in("EUR", "10.00"), "KWD") == {"p": ["3.573"], "c": ["KWD"]}


def test_conversion_uses_the_rate_of_the_conversion_date():
    _rate("EUR", "USD", "1.10", valid_on=date(2026, 11, 20))
    _rate("EUR", "USD", "1.20", valid_on=date(2026, 11, 26))  # after the conversion: ignored
    assert _payout(_conversion_in("EUR", "10.00"), "USD")["p"] == ["11.00"]


def test_revenue_and_sale_amount_are_converted_too(full_conversion):
    _rate("EUR", "USD", "1.25")
    url = "https://t.example.com/cb?r={revenue}&s={saleAmount}"
    request = _render_with(full_conversion, url, currency="EUR", allow_revenue=True)
    assert _query(request.url) == {"r": ["32.00"], "s": ["79.92"]}


def test_missing_rate_is_a_render_error_not_an_unconverted_amount():
    conversion = _conversion_in("USD", "10.00")
    with pytest.raises(RenderError, match="No exchange rate from USD to GBP on or before"):
        _payout(conversion, "GBP")


def test_template_without_amounts_needs_no_rate():
    conversion = _conversion_in("USD", "10.00")
    url = "https://t.example.com/cb?c={currency}"
    assert _query(_render_with(conversion, url, currency="GBP").url) == {"c": ["GBP"]}


def test_same_currency_keeps_the_stored_precision():
    assert _payout(_conversion_in("USD", "0.125"), "USD") == {"p": ["0.125"], "c": ["USD"]}
