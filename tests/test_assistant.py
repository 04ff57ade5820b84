"""The postback assistant: catalog round trips, odd pasted URLs, and the API call."""

from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest

from postbacks.assistant import GENERIC, analyse, platforms
from postbacks.rendering import render_request
from postbacks.validation import validate_postback_config
from tests.factories import (
    AffiliateFactory,
    ConversionFactory,
    OfferFactory,
    PostbackFactory,
    conversion_type,
)

ASSISTANT_URL = "/api/v1/postbacks/assistant/"


def _expected_values(conversion, status_map: dict) -> dict:
    """What each role's parameter must carry once rendered for `conversion` (approved)."""
    return {
        "click_id": conversion.click.aff_s1,
        "payout": "12.50",
        "status": status_map.get("approved", "approved"),
        "transaction_id": conversion.transaction_id,
        "currency": "USD",
        "conversion_type": "sale",
        "conversion_id": str(conversion.pk),
    }


def _create_proposed(analysis):
    values = {**analysis.postback, "scope": "global", "currency": "", "body_format": "form"}
    values["body_template"] = ""
    del values["conversion_types"]  # the factory picks the type
    validate_postback_config(values, allow_revenue=False)
    return PostbackFactory(
        url=values["url"],
        method=values["method"],
        statuses=values["statuses"],
        status_map=values["status_map"],
    )


@pytest.mark.django_db
@pytest.mark.parametrize("key", list(platforms()))
def test_every_catalog_example_round_trips_to_the_right_parameters(key):
    platform = platforms()[key]
    analysis = analyse(platform.example_url)

    assert analysis.platform == (None if key == GENERIC else key)
    assert analysis.ok, analysis.problems
    postback = _create_proposed(analysis)
    conversion = ConversionFactory(click__aff_s1="their-click-7Q", payout=Decimal("12.50"))
    request = render_request(postback, conversion, status="approved", allow_revenue=False)

    sent = {name: values[0] for name, values in parse_qs(urlsplit(request.url).query).items()}
    expected = _expected_values(conversion, postback.status_map)
    example = parse_qs(urlsplit(platform.example_url).query, keep_blank_values=True)
    for role, name in platform.params.items():
        if name in example:
            assert sent[name] == expected[role], (role, name)
    for name in platform.fixed:
        assert sent.get(name, "") == example[name][0]
    assert request.method == platform.method


@pytest.mark.parametrize("key", [k for k in platforms() if k != GENERIC])
def test_choosing_a_platform_without_a_url_proposes_its_example_shape(key):
    analysis = analyse("", platform=key)

    assert analysis.platform == key
    assert analysis.click_id_token == platforms()[key].click_id_token
    assert "{affS1}" in analysis.postback["url"]
    assert any("example shape" in note for note in analysis.notes)


def test_catalog_has_at_least_fifteen_platforms_and_a_generic_entry():
    keys = list(platforms())
    assert len(keys) - 1 >= 15
    assert GENERIC in keys


def test_issue_example_maps_click_id_payout_and_transaction_id():
    analysis = analyse(
        "https://trk.example.com/postback?clickid=REPLACE&payout=OPTIONAL&txid=OPTIONAL"
    )

    assert analysis.platform is None
    assert analysis.postback["url"] == (
        "https://trk.example.com/postback?clickid={affS1}&payout={payout}&txid={transactionId}"
    )
    assert [m.state for m in analysis.mappings] == ["mapped", "mapped", "mapped"]
    assert all(m.explanation for m in analysis.mappings)
    assert analysis.postback["statuses"] == ["approved"]


def test_status_parameter_proposes_more_statuses_and_the_platforms_status_map():
    url = "https://offers-acme.affise.com/postback?clickid={clickid}&sum={sum}&status={status}"
    analysis = analyse(url)

    assert analysis.platform == "affise"
    assert analysis.postback["statuses"] == ["approved", "pending", "rejected"]
    assert analysis.postback["status_map"]["approved"] == "1"
    assert analysis.postback["status_map"]["rejected"] == "3"


@pytest.mark.django_db
def test_status_map_renders_the_platforms_status_word():
    analysis = analyse(platforms()["keitaro"].example_url)
    postback = _create_proposed(analysis)
    conversion = ConversionFactory()

    pending = render_request(postback, conversion, status="pending", allow_revenue=False)
    approved = render_request(postback, conversion, status="approved", allow_revenue=False)

    assert "status=lead" in pending.url
    assert "status=sale" in approved.url


def test_the_click_id_goes_to_the_chosen_aff_s_field():
    analysis = analyse("https://t.example.com/pb?subid=REPLACE", click_field="affS3")

    assert analysis.postback["url"] == "https://t.example.com/pb?subid={affS3}"
    assert analysis.tracking_link.endswith("?affS3={clickid}")


@pytest.mark.django_db
def test_tracking_link_carries_the_platforms_click_id_token_in_aff_s1():
    affiliate, offer = AffiliateFactory(), OfferFactory()
    analysis = analyse(platforms()["cake"].example_url, affiliate=affiliate, offer=offer)

    assert analysis.tracking_link == f"/t/{offer.pk}/{affiliate.pk}/?affS1=#reqid#"


def test_tracking_link_without_an_offer_names_the_missing_ids():
    analysis = analyse(platforms()["voluum"].example_url)

    assert analysis.tracking_link == "/t/<offer id>/<affiliate id>/?affS1={clickid}"


def test_generic_shape_uses_the_affiliates_saved_token():
    affiliate = AffiliateFactory.build(click_id_token="{aff_sub}")
    analysis = analyse("https://t.example.com/pb?click_id=REPLACE", affiliate=affiliate)

    assert analysis.click_id_token == "{aff_sub}"


NOT_IN_CATALOG = [
    (
        "https://track.example.net/pb?click_id={click_id}&revenue={revenue}&status={status}"
        "&order_id={order_id}&cur=USD",
        "https://track.example.net/pb?click_id={affS1}&revenue={payout}&status={status}"
        "&order_id={transactionId}&cur={currency}",
    ),
    (
        "https://x.example/cb?p1={clickid}&p2={payout}&p3=[status]",
        "https://x.example/cb?p1={affS1}&p2={payout}&p3={status}",
    ),
    (
        "https://x.example/cb?aff_sub=!!!sid!!!&commission=%commission%&sub2={sub2}",
        "https://x.example/cb?aff_sub={affS1}&commission={payout}&sub2={affS2}",
    ),
    (
        "https://x.example/cb?s1=REPLACE&s2=OPTIONAL&goal=lead",
        "https://x.example/cb?s1={affS1}&s2={affS2}&goal={conversionType}",
    ),
    (
        "https://x.example/cb?clickId=[[[subid]]]&payment_sum=[[[payment_sum]]]&conversion_id=1",
        "https://x.example/cb?clickId={affS1}&payment_sum={payout}&conversion_id={conversionId}",
    ),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("pasted", "template"), NOT_IN_CATALOG)
def test_common_names_from_platforms_outside_the_catalog_are_mapped(pasted, template):
    analysis = analyse(pasted)

    assert analysis.platform is None
    assert analysis.ok, analysis.problems
    assert analysis.postback["url"] == template
    _create_proposed(analysis)  # passes the postback validation


def test_a_second_required_click_id_is_flagged():
    analysis = analyse("https://x.example/cb?clickid=REPLACE&subid=REPLACE")

    assert analysis.postback["url"].startswith("https://x.example/cb?clickid={affS1}")
    assert not analysis.ok


# Odd shapes: a sensible mapping or a clear "could not map", never an exception.


def test_tokens_in_the_path_are_mapped():
    analysis = analyse("https://t.example.com/conv/{clickid}/{payout}")

    assert analysis.postback["url"] == "https://t.example.com/conv/{affS1}/{payout}"
    assert {m.location for m in analysis.mappings} == {"path"}


def test_unknown_token_in_the_path_is_flagged_and_kept_literally():
    analysis = analyse("https://t.example.com/<key>/postback?clickid=REPLACE")

    assert analysis.postback["url"] == "https://t.example.com/%3Ckey%3E/postback?clickid={affS1}"
    assert any("<key>" in problem for problem in analysis.problems)
    assert not analysis.ok


def test_fragment_is_left_out_with_a_note():
    analysis = analyse("https://t.example.com/pb?clickid=REPLACE#section")

    assert analysis.postback["url"] == "https://t.example.com/pb?clickid={affS1}"
    assert any("#section" in note for note in analysis.notes)


def test_hash_tokens_are_values_not_a_fragment():
    analysis = analyse("https://t.example.com/pb?s2=#s2#&payout=#price#")

    assert analysis.postback["url"] == "https://t.example.com/pb?s2={affS1}&payout={payout}"


def test_repeated_parameters_are_sent_once():
    analysis = analyse("https://t.example.com/pb?clickid=REPLACE&CLICKID=REPLACE&sum=1")

    assert analysis.postback["url"] == "https://t.example.com/pb?clickid={affS1}&sum={payout}"
    assert [m.state for m in analysis.mappings] == ["mapped", "dropped", "mapped"]


def test_uppercase_and_camel_case_names_are_recognised():
    analysis = analyse("https://t.example.com/pb?ClickID=REPLACE&PAYOUT=1&TxId=2&Currency=USD")

    assert analysis.postback["url"] == (
        "https://t.example.com/pb?ClickID={affS1}&PAYOUT={payout}&TxId={transactionId}"
        "&Currency={currency}"
    )


def test_already_encoded_tokens_are_read_decoded():
    analysis = analyse("https://t.example.com/pb?clickid=%7Bclickid%7D&amount=%24%7Bamount%7D")

    assert analysis.postback["url"] == "https://t.example.com/pb?clickid={affS1}&amount={payout}"


def test_literal_values_keep_their_encoding():
    analysis = analyse("https://t.example.com/pb?clickid=REPLACE&note=a%20b%26c&cur=%E2%82%AC")

    assert analysis.postback["url"] == (
        "https://t.example.com/pb?clickid={affS1}&note=a%20b%26c&cur={currency}"
    )


def test_no_query_at_all_says_the_click_id_is_missing():
    analysis = analyse("https://t.example.com/postback")

    assert not analysis.ok
    assert any("click-id parameter" in problem for problem in analysis.problems)


def test_unknown_placeholder_parameter_is_flagged_as_could_not_map():
    analysis = analyse("https://t.example.com/pb?clickid=REPLACE&zone={zoneid}")

    [zone] = [m for m in analysis.mappings if m.parameter == "zone"]
    assert zone.state == "unmapped"
    assert zone.explanation.startswith("Could not map 'zone'")
    # Kept literally, braces encoded so it never reads as one of our placeholders.
    assert analysis.postback["url"].endswith("&zone=%7Bzoneid%7D")


def test_fixed_values_are_kept_as_pasted():
    analysis = analyse("https://www.acme-ef.example/?nid=77&transaction_id={transaction_id}")

    assert analysis.platform == "everflow"
    assert analysis.postback["url"] == "https://www.acme-ef.example/?nid=77&transaction_id={affS1}"


def test_second_click_id_like_parameter_becomes_the_transaction_id():
    analysis = analyse("https://t.example.com/pb?clickid=REPLACE&transaction_id=OPTIONAL")

    assert analysis.postback["url"] == (
        "https://t.example.com/pb?clickid={affS1}&transaction_id={transactionId}"
    )


def test_our_own_placeholders_are_kept():
    analysis = analyse("https://t.example.com/pb?c={affS1}&p={payout}&d={deliveryId}")

    assert (
        analysis.postback["url"] == "https://t.example.com/pb?c={affS1}&p={payout}&d={deliveryId}"
    )


def test_missing_scheme_is_added_with_a_note():
    analysis = analyse("trk.example.com/pb?clickid=REPLACE")

    assert analysis.postback["url"] == "https://trk.example.com/pb?clickid={affS1}"
    assert analysis.ok


def test_placeholder_in_the_host_is_a_problem():
    analysis = analyse("https://{domain}/pb?clickid=REPLACE")

    assert not analysis.ok
    assert any("host" in problem for problem in analysis.problems)


def test_sale_amount_needs_the_revenue_setting():
    refused = analyse("https://t.example.com/pb?clickid=1&sale_amount=2")
    allowed = analyse("https://t.example.com/pb?clickid=1&sale_amount=2", allow_revenue=True)

    assert not refused.ok
    assert allowed.postback["url"].endswith("sale_amount={saleAmount}")


def test_unknown_platform_is_a_clear_problem():
    analysis = analyse("https://t.example.com/pb?clickid=1", platform="nope")

    assert any("Unknown platform 'nope'" in problem for problem in analysis.problems)


@pytest.mark.parametrize(
    "pasted",
    [
        "",
        None,
        12,
        "garbage string",
        "ftp://example.com/file",
        "http://[::1/",
        "https://",
        "?clickid=1",
        "https://t.example.com/%%?=&&==&clickid",
        "https://t.example.com/pb?" + "&".join(f"p{n}=REPLACE" for n in range(300)),
        "https://t.example.com/pb?clickid={{{{{",
        "https://t.example.com/pb?clickid=\x00\ue000\ue001",
        "\n\t https://t.example.com/pb?clickid=REPLACE \n",
    ],
)
def test_odd_input_never_raises(pasted):
    analysis = analyse(pasted)

    assert analysis.to_dict()["ok"] in (True, False)
    if not analysis.ok:
        assert analysis.problems


# The API


@pytest.mark.django_db
def test_api_returns_the_analysis(api_client):
    conversion_type("sale")
    affiliate = AffiliateFactory()
    response = api_client.post(
        ASSISTANT_URL,
        {
            "url": "https://acme.rdtk.io/postback?clickid=REPLACE&sum=OPTIONAL&status=OPTIONAL",
            "affiliate": affiliate.pk,
        },
        format="json",
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["platform"] == "redtrack"
    assert body["ok"] is True
    assert (
        body["postback"]["url"]
        == "https://acme.rdtk.io/postback?clickid={affS1}&sum={payout}&status={status}"
    )
    assert body["postback"]["status_map"]["rejected"] == "declined"
    assert "sale" in body["postback"]["conversion_types"]
    assert body["tracking_link"] == f"/t/<offer id>/{affiliate.pk}/?affS1={{clickid}}"
    assert {m["state"] for m in body["mappings"]} == {"mapped"}


@pytest.mark.django_db
def test_api_with_only_a_platform_returns_its_example(api_client):
    response = api_client.post(ASSISTANT_URL, {"platform": "voluum"}, format="json")

    assert response.status_code == 200
    assert response.json()["platform"] == "voluum"


@pytest.mark.django_db
def test_api_without_a_url_is_a_400(api_client):
    response = api_client.post(ASSISTANT_URL, {}, format="json")

    assert response.status_code == 400
    assert "url" in response.json()


@pytest.mark.django_db
def test_api_with_an_unknown_platform_or_affiliate_is_a_400(api_client):
    response = api_client.post(
        ASSISTANT_URL,
        {"url": "https://t.example.com/?clickid=1", "platform": "nope", "affiliate": 999999},
        format="json",
    )

    assert response.status_code == 400
    assert set(response.json()) == {"platform", "affiliate"}


@pytest.mark.django_db
def test_api_garbage_url_is_a_200_with_problems(api_client):
    response = api_client.post(ASSISTANT_URL, {"url": "not a url"}, format="json")

    assert response.status_code == 200
    assert response.json()["ok"] is False
    assert response.json()["problems"]


@pytest.mark.django_db
def test_api_needs_a_token(anon_client):
    response = anon_client.post(
        ASSISTANT_URL, {"url": "https://t.example.com/?clickid=1"}, format="json"
    )

    assert response.status_code in (401, 403)


@pytest.mark.django_db
def test_api_is_in_the_openapi_schema(api_client):
    response = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    schema = response.json() if response["Content-Type"].endswith("json") else None
    text = response.content.decode()
    assert "/api/v1/postbacks/assistant/" in text
    assert "PostbackAnalysis" in text
    if schema:
        assert "post" in schema["paths"]["/api/v1/postbacks/assistant/"]
