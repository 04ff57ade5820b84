"""The postback assistant: catalog round trips, odd pasted URLs, and the API call."""

from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.exceptions import ValidationError

from postbacks.assistant.analysis import analyse
from postbacks.assistant.catalog import GENERIC, platforms
from postbacks.assistant.clickfield import click_field_of
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
    # A platform without a macro of its own (Impact) proposes the common one, like generic.
    expected = platforms()[key].click_id_token or platforms()[GENERIC].click_id_token
    assert analysis.click_id_token == expected
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
def test_tracking_link_and_postback_use_the_same_chosen_field():
    affiliate, offer = AffiliateFactory(), OfferFactory()
    analysis = analyse(
        platforms()["cake"].example_url, affiliate=affiliate, offer=offer, click_field="affS4"
    )

    assert analysis.tracking_link == f"/t/{offer.pk}/{affiliate.pk}/?affS4=#reqid#"
    assert "r={affS4}" in analysis.postback["url"]
    assert "{affS1}" not in analysis.postback["url"]
    assert click_field_of(analysis.postback["url"]) == "affS4"
    assert any("into affS4" in m.explanation for m in analysis.mappings)


def test_a_sub_id_in_the_chosen_click_field_is_flagged():
    analysis = analyse("https://t.example.com/pb?s1=REPLACE&s3=OPTIONAL", click_field="affS3")

    [s3] = [m for m in analysis.mappings if m.parameter == "s3"]
    assert s3.state == "unmapped"
    assert not analysis.ok
    assert any("both travel in affS3" in problem for problem in analysis.problems)


@pytest.mark.parametrize(
    ("template", "field"),
    [
        ("https://t.example.com/pb?clickid={affS1}&payout={payout}", "affS1"),
        ("https://t.example.com/pb?subid={affS3}&sub2={affS2}", "affS3"),
        ("https://t.example.com/pb?s2={affS2}&s1={affS4}", "affS4"),
        ("https://track.example/p.ashx?o=1&e=2&r={aff_s5}", "affS5"),  # CAKE's r, an alias
        ("https://t.example.com/pb?sub2={affS2}&clickid={cid}", None),  # our own click id
        ("https://t.example.com/conv/{affS3}", None),
        ("https://t.example.com/pb?payout={payout}", None),
        ("", None),
        (None, None),
    ],
)
def test_click_field_of_a_template(template, field):
    assert click_field_of(template) == field


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
        "&order_id={transactionId}&cur=USD",
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
        "https://x.example/cb?s1={affS1}&s2={affS2}&goal=lead",
    ),
    (
        "https://x.example/cb?clickId=[[[subid]]]&payment_sum=[[[payment_sum]]]&conversion_id=1",
        "https://x.example/cb?clickId={affS1}&payment_sum={payout}&conversion_id=1",
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


def test_an_empty_token_in_the_path_is_flagged():
    analysis = analyse("https://t.example.com/pb/{}/?clickid=REPLACE")

    assert analysis.postback["url"] == "https://t.example.com/pb/%7B%7D/?clickid={affS1}"
    assert not analysis.ok
    assert any("'{}'" in problem for problem in analysis.problems)


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
    analysis = analyse("https://t.example.com/pb?clickid=REPLACE&CLICKID=REPLACE&sum=OPTIONAL")

    assert analysis.postback["url"] == "https://t.example.com/pb?clickid={affS1}&sum={payout}"
    assert [m.state for m in analysis.mappings] == ["mapped", "dropped", "mapped"]


def test_uppercase_and_camel_case_names_are_recognised():
    analysis = analyse(
        "https://t.example.com/pb?ClickID=REPLACE&PAYOUT=OPTIONAL&TxId=[txid]&Currency={cur}"
    )

    assert analysis.postback["url"] == (
        "https://t.example.com/pb?ClickID={affS1}&PAYOUT={payout}&TxId={transactionId}"
        "&Currency={currency}"
    )


def test_already_encoded_tokens_are_read_decoded():
    analysis = analyse("https://t.example.com/pb?clickid=%7Bclickid%7D&amount=%24%7Bamount%7D")

    assert analysis.postback["url"] == "https://t.example.com/pb?clickid={affS1}&amount={payout}"


def test_literal_values_keep_their_encoding():
    analysis = analyse("https://t.example.com/pb?clickid=REPLACE&note=a%20b%26c&cur=%E2%82%AC")

    # A fixed value stays exactly as written, its encoding included (cur is no token here).
    assert analysis.postback["url"] == (
        "https://t.example.com/pb?clickid={affS1}&note=a%20b%26c&cur=%E2%82%AC"
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
    pasted = "https://t.example.com/pb?clickid=REPLACE&sale_amount=OPTIONAL"
    refused = analyse(pasted)
    allowed = analyse(pasted, allow_revenue=True)

    assert not refused.ok
    assert allowed.postback["url"].endswith("sale_amount={saleAmount}")


def test_unknown_platform_is_a_clear_problem():
    analysis = analyse("https://t.example.com/pb?clickid=1", platform="nope")

    assert any("Unknown platform 'nope'" in problem for problem in analysis.problems)


LONG_URL = "https://t.example.com/pb?clickid=REPLACE&note=" + "a" * 20_000
ODD_INPUTS = [
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
    # The characters the analyser masks tokens with, pasted with a number between them.
    "https://t.example.com/\ue0009\ue001/pb?clickid=\ue0003\ue001",
    "https://\ue0000\ue001/pb?clickid=1",
    "https://t.example.com/conv/{clickid}/{payout}/#s2#",
    "https://t.example.com/pb/{}/{affS1}/?clickid=REPLACE",
    "https://t.example.com/pb?clickid=REPLACE#frag?x=1&y={payout}",
    "https://t.example.com/pb?clickid=REPLACE&clickid=2&ClickId=3&payout=1&payout=2",
    "HTTPS://T.EXAMPLE.COM/PB?CLICKID=REPLACE&PAYOUT=OPTIONAL&STATUS=OPTIONAL",
    "https://t.example.com/pb?clickid=%257Bclickid%257D&payout=%24%7Bpayout%7D&x=%ZZ",
    "https://t.example.com/postback",
    "https://t.example.com",
    "   ",
    "\t\n",
    "javascript:alert(1)",
    "javascript://t.example.com/%0Aalert(1)",
    "JAVASCRIPT:fetch('//t.example.com')",
    "data:text/html,<b>x</b>",
    LONG_URL,
    "https://t.example.com/pb?" + "&".join(f"clickid{n}=REPLACE" for n in range(2000)),
    "https://bücher.example/pb?clickid=REPLACE",
    "https://xn--bcher-kva.example/pb?clickid=REPLACE",
    "https://трекер.пример/pb?clickid={clickid}&сумма={payout}",
    "https://t.example.com:abc/pb?clickid=1",
    "https://t.example.com:/pb?clickid=1",
    "https://user:pw@t.example.com/pb?clickid=1",
    "https://a:22\\@b.example/pb?clickid=1",
    "https://[::ffff:127.0.0.1]/pb?clickid=1",
    "https://t.example.com/pb?clickid=\ud800",
    "https://t.example.com/pb?clickid={" + "a" * 5000 + "}",
]


CRASHED = "Could not read this URL ("  # analyse()'s answer when one of its steps raised


def _crashed(problems) -> bool:
    return any(problem.startswith(CRASHED) for problem in problems)


@pytest.mark.parametrize("pasted", ODD_INPUTS, ids=lambda value: repr(value)[:40])
def test_odd_input_never_raises(pasted):
    analysis = analyse(pasted)

    assert analysis.to_dict()["ok"] in (True, False)
    if not analysis.ok:
        assert analysis.problems
    assert not _crashed(analysis.problems), analysis.problems


class _ExplodingText(str):
    """Pasted text that breaks the analysis as soon as it is read."""

    def strip(self, chars=None):
        raise KeyError(chars)


def test_a_crash_inside_the_analysis_is_an_answer_not_a_traceback():
    analysis = analyse(_ExplodingText("https://t.example.com/pb?clickid=REPLACE"))

    assert not analysis.ok
    assert analysis.problems == ["Could not read this URL (KeyError); check it and retry."]
    assert _crashed(analysis.problems)


@pytest.mark.parametrize(
    ("pasted", "problem"),
    [
        ("", "Paste the postback URL"),
        ("   ", "Paste the postback URL"),
        ("javascript:alert(1)", "does not look like a URL"),
        ("javascript://t.example.com/%0Aalert(1)", "http or https, not javascript:"),
        ("https://t.example.com/postback", "click-id parameter"),
        ("https://t.example.com", "click-id parameter"),
    ],
)
def test_odd_input_that_cannot_be_created_says_why(pasted, problem):
    analysis = analyse(pasted)

    assert not analysis.ok
    assert not _crashed(analysis.problems), analysis.problems
    assert any(problem in text for text in analysis.problems), analysis.problems


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("pasted", "template"),
    [
        (
            "https://t.example.com/pb?clickid=REPLACE#frag?x=1&y={payout}",
            "https://t.example.com/pb?clickid={affS1}",
        ),
        (
            "https://t.example.com/pb?clickid=REPLACE&clickid=2&ClickId=3&payout=1&payout=2",
            "https://t.example.com/pb?clickid={affS1}&payout=1",
        ),
        (
            "HTTPS://T.EXAMPLE.COM/PB?CLICKID=REPLACE&PAYOUT=OPTIONAL",
            "https://T.EXAMPLE.COM/PB?CLICKID={affS1}&PAYOUT={payout}",
        ),
        (
            "https://t.example.com/conv/{clickid}/{affS2}?sum=%24%7Bsum%7D",
            "https://t.example.com/conv/{affS1}/{affS2}?sum={payout}",
        ),
        (
            "https://bücher.example/pb?clickid=REPLACE",
            "https://bücher.example/pb?clickid={affS1}",
        ),
    ],
)
def test_odd_but_readable_urls_give_a_postback_that_can_be_created(pasted, template):
    analysis = analyse(pasted)

    assert analysis.ok, analysis.problems
    assert analysis.postback["url"] == template
    _create_proposed(analysis)  # passes the postback validation


def test_a_very_long_url_is_read_whole():
    analysis = analyse(LONG_URL)

    assert analysis.ok, analysis.problems
    assert analysis.postback["url"].endswith("&note=" + "a" * 20_000)


def test_a_long_value_is_cut_in_messages():
    analysis = analyse("https://t.example.com/pb?clickid=REPLACE&zone={" + "z" * 5000 + "}")

    assert not analysis.ok
    assert max(len(problem) for problem in analysis.problems) < 200


# What creation or delivery would refuse is a problem already in the analysis.

REFUSED = [
    ("http://127.0.0.1/pb?clickid=REPLACE", "non-public address (127.0.0.1)"),
    ("http://169.254.169.254/latest?clickid=REPLACE", "non-public address (169.254.169.254)"),
    ("http://localhost/pb?clickid=REPLACE", "non-public address (127.0.0.1)"),
    ("http://2130706433/pb?clickid=REPLACE", "non-public address (127.0.0.1)"),
    ("https://[::1]/pb?clickid=REPLACE", "non-public address (::1)"),
    ("https://t.example.com:99999/pb?clickid=REPLACE", "port must be a number"),
    ("https://t.example.com:8080/pb?clickid=REPLACE", "Port 8080 is not allowed"),
    ("http://8.8.8.8:8443/pb?clickid=REPLACE", "Port 8443 is not allowed"),
    ("https://a:22\\@b.example/pb?clickid=REPLACE", "backslash"),
]


@pytest.mark.parametrize(("pasted", "problem"), REFUSED)
def test_destinations_creation_or_delivery_refuses_are_problems(pasted, problem, settings):
    settings.POSTBACK_ALLOWED_NETWORKS = []
    analysis = analyse(pasted)

    assert not analysis.ok
    assert not _crashed(analysis.problems), analysis.problems
    assert any(problem in text for text in analysis.problems), analysis.problems
    assert analysis.postback["url"]  # the proposal is still shown, with the reason


def test_the_form_refuses_what_the_analysis_reports_from_its_checks(settings):
    settings.POSTBACK_ALLOWED_NETWORKS = []
    for pasted, _ in REFUSED[:6]:
        proposal = analyse(pasted).postback
        values = {**proposal, "scope": "global", "currency": "", "body_format": "form"}
        del values["conversion_types"]
        with pytest.raises(ValidationError) as refused:
            validate_postback_config({**values, "body_template": ""}, allow_revenue=False)
        assert set(refused.value.message_dict) == {"url"}, pasted


def test_an_allowed_network_may_use_any_port(settings):
    settings.POSTBACK_ALLOWED_NETWORKS = ["127.0.0.0/8"]

    analysis = analyse("http://127.0.0.1:8001/postback?clickid=REPLACE")

    assert analysis.ok, analysis.problems


def test_a_named_host_on_another_port_passes_when_networks_are_allowed(settings):
    """It may resolve into an allowed network (any port there); delivery decides."""
    settings.POSTBACK_ALLOWED_NETWORKS = ["10.1.0.0/16"]

    analysis = analyse("https://t.example.com:8080/pb?clickid=REPLACE")

    assert analysis.ok, analysis.problems


def test_allowed_ports_come_from_the_setting(settings):
    settings.POSTBACK_ALLOWED_NETWORKS = []
    settings.POSTBACK_ALLOWED_PORTS = [443, 8443]

    assert analyse("https://t.example.com:8443/pb?clickid=REPLACE").ok
    assert not analyse("http://t.example.com/pb?clickid=REPLACE").ok  # port 80 is not listed


# Impact: recognised by its partner macros, read by macro rather than parameter name.


def test_impact_macros_are_recognised_and_mapped_whatever_the_parameter_names():
    analysis = analyse(
        "https://go.partner.example/cb?c={SubId1}&v={Payout}&o={OID}&s={ActionStatus}"
        "&id={ActionId}&cur={Currency}"
    )

    assert analysis.platform == "impact"
    assert analysis.recognised_by == "macros {SubId1}"
    assert analysis.postback["url"] == (
        "https://go.partner.example/cb?c={affS1}&v={payout}&o={transactionId}&s={status}"
        "&id={conversionId}&cur={currency}"
    )
    assert analysis.postback["status_map"]["rejected"] == "REVERSED"
    assert analysis.ok, analysis.problems


def test_impacts_amount_is_the_sale_amount_not_the_payout():
    pasted = "https://go.partner.example/cb?clickid={SubId1}&payout={Amount}"

    refused = analyse(pasted)
    allowed = analyse(pasted, allow_revenue=True)

    assert not refused.ok
    assert allowed.postback["url"].endswith("payout={saleAmount}")


def test_impact_is_not_guessed_from_lowercase_sub_ids():
    analysis = analyse("https://go.partner.example/cb?clickid={subid1}&payout={payout}")

    assert analysis.platform is None


@pytest.mark.django_db
def test_impact_proposes_the_affiliates_saved_token_as_its_tracker_fills_it():
    affiliate = AffiliateFactory.build(click_id_token="{aff_sub}")

    analysis = analyse(platforms()["impact"].example_url, affiliate=affiliate)

    assert analysis.click_id_token == "{aff_sub}"
    assert analysis.tracking_link.endswith("?affS1={aff_sub}")


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
@pytest.mark.parametrize(("pasted", "problem"), REFUSED)
def test_api_reports_refused_destinations_as_problems(api_client, settings, pasted, problem):
    settings.POSTBACK_ALLOWED_NETWORKS = []
    response = api_client.post(ASSISTANT_URL, {"url": pasted}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["ok"] is False
    assert any(problem in text for text in body["problems"]), body["problems"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "pasted",
    # A lone surrogate cannot travel in a UTF-8 JSON body at all.
    [v for v in ODD_INPUTS if isinstance(v, str) and "\ud800" not in v],
    ids=lambda value: repr(value)[:40],
)
def test_api_odd_input_is_an_answer_not_a_crash(api_client, pasted):
    response = api_client.post(ASSISTANT_URL, {"url": pasted}, format="json")

    # 400 only for what the request itself lacks (blank after trimming, a NUL character).
    assert response.status_code in (200, 400), response.content
    if response.status_code == 400:
        assert not pasted.strip() or "\x00" in pasted
        return
    body = response.json()
    assert body["ok"] is bool(body["ok"]) and (body["ok"] or body["problems"])
    assert not _crashed(body["problems"]), body["problems"]


@pytest.mark.django_db
def test_api_tracking_link_uses_the_chosen_click_field(api_client):
    affiliate, offer = AffiliateFactory(), OfferFactory()
    response = api_client.post(
        ASSISTANT_URL,
        {
            "url": "https://acme.rdtk.io/postback?clickid=REPLACE&sum=OPTIONAL",
            "affiliate": affiliate.pk,
            "offer": offer.pk,
            "click_field": "affS3",
        },
        format="json",
    )

    body = response.json()
    assert body["click_id_field"] == "affS3"  # the API keeps its original key
    assert body["tracking_link"] == f"/t/{offer.pk}/{affiliate.pk}/?affS3={{clickid}}"
    assert body["postback"]["url"] == "https://acme.rdtk.io/postback?clickid={affS3}&sum={payout}"


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


# Issue 11: a documented template is never mangled.


@pytest.mark.parametrize(
    ("pasted", "template"),
    [
        (
            "https://t.example.com/pb?clickid=REPLACE&type=Upsell&goal=1&sum=25&cur=EUR",
            "https://t.example.com/pb?clickid={affS1}&type=Upsell&goal=1&sum=25&cur=EUR",
        ),
        (
            "https://t.example.com/pb?clickid=REPLACE&status=lead&payout=10.5&txid=abc-1",
            "https://t.example.com/pb?clickid={affS1}&status=lead&payout=10.5&txid=abc-1",
        ),
    ],
)
def test_fixed_values_stay_as_written_whatever_the_parameter_is_called(pasted, template):
    analysis = analyse(pasted)

    assert analysis.postback["url"] == template
    assert analysis.ok, analysis.problems
    assert {m.state for m in analysis.mappings if m.parameter != "clickid"} == {"kept"}


@pytest.mark.parametrize("name", ["uid", "nid", "account", "key", "advertiser_id", "secure"])
def test_account_parameters_are_never_mapped_onto_transaction_ids(name):
    fixed = analyse(f"https://t.example.com/pb?clickid=REPLACE&{name}=77")
    token = analyse(f"https://t.example.com/pb?clickid=REPLACE&{name}=REPLACE")

    assert fixed.postback["url"].endswith(f"&{name}=77")
    assert fixed.ok, fixed.problems
    assert token.postback["url"].endswith(f"&{name}=REPLACE")
    assert "{transactionId}" not in token.postback["url"]
    assert not token.ok
    assert any(f"'{name}'" in problem for problem in token.problems)


def test_an_account_parameter_carrying_a_click_id_token_is_the_click_id():
    analysis = analyse("https://t.example.com/log?action=conversion&key={externalid}")

    assert analysis.postback["url"] == "https://t.example.com/log?action=conversion&key={affS1}"


def test_triple_hash_is_a_token_not_a_fragment():
    analysis = analyse("https://t.example.com/pb?clickid=###&payout=###&zone=###&sub2=x")

    assert analysis.postback["url"] == (
        "https://t.example.com/pb?clickid={affS1}&payout={payout}&zone=%23%23%23&sub2=x"
    )
    assert not analysis.ok
    assert any("'zone'" in problem for problem in analysis.problems)


@pytest.mark.parametrize(
    ("token", "placeholder"),
    [
        ("{clickid}", "{affS1}"),
        ("{{clickid}}", "{affS1}"),
        ("[clickid]", "{affS1}"),
        ("#clickid#", "{affS1}"),
        ("###", "{affS1}"),
        ("!!!clickid!!!", "{affS1}"),
        ("%clickid%", "{affS1}"),
        ("$clickid", "{affS1}"),
        ("${clickid}", "{affS1}"),
        ("[=SID=]", "{affS1}"),
        ("[[subid]]", "{affS1}"),
        ("REPLACE", "{affS1}"),
        ("OPTIONAL", "{affS1}"),
        ("{}", "{affS1}"),
        ("CLICK_ID", "{affS1}"),
        ("YOUR_CLICK_ID", "{affS1}"),
    ],
)
def test_every_documented_token_form_is_recognised(token, placeholder):
    analysis = analyse(f"https://t.example.com/pb?cid={token}&note=fixed")

    assert analysis.postback["url"] == f"https://t.example.com/pb?cid={placeholder}&note=fixed"
    assert analysis.ok, analysis.problems


@pytest.mark.parametrize(
    ("pasted", "parameter"),
    [
        ("https://t.example.com/pb?clickid=REPLACE&p1={}", "p1"),
        ("https://t.example.com/pb?clickid=REPLACE&zone=ZONE_ID", "zone"),
        ("https://t.example.com/pb?clickid=REPLACE&x=EVENT_ID", "x"),
        ("https://t.example.com/pb?clickid=REPLACE&ev=!!!zone!!!", "ev"),
    ],
)
def test_a_token_that_cannot_be_mapped_is_a_problem_naming_its_parameter(pasted, parameter):
    analysis = analyse(pasted)

    assert not analysis.ok
    assert any(f"'{parameter}'" in problem for problem in analysis.problems)


def test_an_event_name_token_is_the_conversion_type():
    analysis = analyse("https://t.example.com/postback?cid=REPLACE&et=EVENT_NAME")

    assert (
        analysis.postback["url"] == "https://t.example.com/postback?cid={affS1}&et={conversionType}"
    )


@pytest.mark.parametrize(
    ("value", "parameter"),
    [
        ("APPROVED", "status"),  # a fixed status, or a macro without delimiters?
        ("aff_{clickid}", "sub3"),  # text around a token
        ("{a}-{b}", "sub3"),
        ("status", "status"),  # the parameter's own name
    ],
)
def test_a_value_that_could_be_token_or_fixed_is_a_problem(value, parameter):
    analysis = analyse(f"https://t.example.com/pb?clickid=REPLACE&{parameter}={value}")

    assert not analysis.ok
    assert any(
        f"'{parameter}'" in problem and "token or a fixed value" in problem
        for problem in analysis.problems
    ), analysis.problems


def test_keep_sends_a_parameter_exactly_as_written():
    pasted = "https://t.example.com/pb?clickid=REPLACE&status=APPROVED&sub3=aff_{x}"

    analysis = analyse(pasted, keep=["STATUS", "sub3"])

    assert analysis.ok, analysis.problems
    assert analysis.postback["url"] == (
        "https://t.example.com/pb?clickid={affS1}&status=APPROVED&sub3=aff_%7Bx%7D"
    )


def test_a_currency_code_is_a_fixed_value():
    analysis = analyse("https://t.example.com/pb?clickid=REPLACE&currency=USD")

    assert analysis.postback["url"].endswith("&currency=USD")
    assert analysis.ok, analysis.problems


@pytest.mark.django_db
def test_api_create_saves_the_proposal_once_and_then_returns_it(api_client):
    conversion_type("sale")
    affiliate = AffiliateFactory()
    request = {
        "url": "https://acme.rdtk.io/postback?clickid=REPLACE&sum=OPTIONAL",
        "affiliate": affiliate.pk,
        "create": True,
    }

    first = api_client.post(ASSISTANT_URL, request, format="json")
    second = api_client.post(ASSISTANT_URL, request, format="json")

    assert first.status_code == 201, first.content
    assert first.json()["created"] is True
    assert second.status_code == 200
    assert second.json()["created"] is False
    assert second.json()["existing_postback"]["id"] == first.json()["existing_postback"]["id"]
    assert affiliate.postbacks.count() == 1
    postback = affiliate.postbacks.get()
    assert postback.url == "https://acme.rdtk.io/postback?clickid={affS1}&sum={payout}"
    assert postback.active is False


@pytest.mark.django_db
def test_api_analysis_names_the_affiliates_existing_postback(api_client):
    affiliate = AffiliateFactory()
    existing = PostbackFactory(
        affiliate=affiliate, url="https://acme.rdtk.io/postback?clickid={affS1}", method="GET"
    )
    request = {"url": "https://acme.rdtk.io/postback?clickid=REPLACE", "affiliate": affiliate.pk}

    body = api_client.post(ASSISTANT_URL, request, format="json").json()

    assert body["existing_postback"]["id"] == existing.pk
    assert body["created"] is False


@pytest.mark.django_db
def test_api_create_refuses_a_proposal_with_problems(api_client):
    affiliate = AffiliateFactory()
    request = {
        "url": "https://t.example.com/pb?clickid=REPLACE&key=REPLACE",
        "affiliate": affiliate.pk,
        "create": True,
    }

    response = api_client.post(ASSISTANT_URL, request, format="json")

    assert response.status_code == 422
    assert any("'key'" in problem for problem in response.json()["problems"])
    assert not affiliate.postbacks.exists()


@pytest.mark.django_db
def test_api_create_needs_an_affiliate(api_client):
    request = {"url": "https://t.example.com/pb?clickid=REPLACE", "create": True}

    response = api_client.post(ASSISTANT_URL, request, format="json")

    assert response.status_code == 400
    assert "affiliate" in response.json()
