"""Validating a postback's configuration (admin and API alike)."""

import pytest
from django.core.exceptions import ValidationError

from postbacks.models import TrackingSettings
from postbacks.validation import validate_postback_config
from tests.factories import AffiliateFactory, postback_form_data, postback_values

pytestmark = pytest.mark.django_db

REVENUE_MESSAGE = (
    "{revenue} needs 'Allow revenue and sale amount parameters in affiliate postbacks' turned on "
    "under Tracking settings (Admin → Affiliate postbacks → Tracking settings)."
)
SALE_AMOUNT_MESSAGE = REVENUE_MESSAGE.replace("{revenue}", "{saleAmount}")


def _errors(allow_revenue=False, **overrides) -> dict:
    with pytest.raises(ValidationError) as raised:
        validate_postback_config(postback_values(**overrides), allow_revenue=allow_revenue)
    return raised.value.message_dict


def _passes(allow_revenue=False, **overrides) -> None:
    validate_postback_config(postback_values(**overrides), allow_revenue=allow_revenue)


def test_a_typical_get_postback_is_valid():
    _passes()


def test_all_errors_are_reported_at_once_per_field():
    errors = _errors(url="ftp://x", method="PUT", statuses=[], currency="XYZ")
    assert set(errors) == {"url", "method", "statuses", "currency"}


# --- URL ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["", "tracker.example.com/cb", "ftp://tracker.example.com/cb", "javascript:alert(1)"]
)
def test_url_must_be_http_or_https(url):
    assert "url" in _errors(url=url)


def test_url_must_name_a_host():
    assert _errors(url="https:///cb?x=1")["url"] == [
        "The URL must name a host, e.g. https://tracker.example.com/postback."
    ]


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data",
        "http://2130706433/pb",
        "http://[::ffff:127.0.0.1]/pb",
        "http://tracker.example.com@10.0.0.1/pb",
        "http://localhost./pb",
    ],
)
def test_url_pointing_at_a_blocked_address_is_refused(url, settings):
    settings.POSTBACK_ALLOWED_NETWORKS = []
    (message,) = _errors(url=url)["url"]
    assert message.startswith("Postback URLs may not point at a non-public address")


def test_url_with_a_backslash_in_the_host_part_is_refused():
    assert _errors(url="http://tracker.example.com\\@8.8.8.8/pb")["url"] == [
        "The URL's host part may not contain a backslash."
    ]


def test_url_in_an_allowed_network_is_accepted(settings):
    settings.POSTBACK_ALLOWED_NETWORKS = ["10.1.0.0/16"]
    _passes(url="http://10.1.2.3/pb?c={affS1}")


@pytest.mark.parametrize("port", ["99999", "0"])
def test_url_with_a_bad_port_is_refused(settings, port):
    settings.POSTBACK_ALLOWED_NETWORKS = ["127.0.0.0/8"]  # any port there, but never port 0
    for host in ("t.example.com", "127.0.0.1"):
        assert _errors(url=f"https://{host}:{port}/cb")["url"] == [
            "The URL's port must be a number between 1 and 65535."
        ]


def test_url_with_a_line_break_is_refused():
    assert "url" in _errors(url="https://t.example.com/cb?a=1\r\nX: y")


@pytest.mark.parametrize(
    "url",
    [
        "https://{affS1}.example.com/cb",
        "https://tracker.{affS1}/cb",
        "https://tracker.example.com:{affS1}/cb",
        "https://{affS1}@tracker.example.com/cb",
        "https://user:{cid}@tracker.example.com/cb",
    ],
)
def test_placeholders_in_host_port_or_user_info_are_refused(url):
    [message] = _errors(url=url)["url"]
    assert "placeholders may not appear in the host" in message


def test_placeholder_in_the_scheme_is_refused():
    assert "url" in _errors(url="{affS1}://tracker.example.com/cb")


def test_placeholders_in_path_query_and_fragment_are_fine():
    _passes(url="https://tracker.example.com/{affS1}/cb?id={cid}#{transactionId}")


def test_unknown_placeholder_is_refused_with_the_valid_names():
    [message] = _errors(url="https://t.example.com/cb?id={aff_sub}")["url"]
    assert message.startswith("Unknown placeholder {aff_sub}. Valid placeholders: {affS1},")
    assert "{deliveryId}" in message


def test_several_unknown_placeholders_are_named_together():
    [message] = _errors(url="https://t.example.com/cb?a={sid}&b={clickid}")["url"]
    assert message.startswith("Unknown placeholders {sid}, {clickid}.")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://t.example.com/cb?id={click-id}", "{click-id}"),
        ("https://t.example.com/cb?id={affS1", "{affS1"),
        ("https://t.example.com/cb?id={{affS1}}", "{{affS1}}"),
        ("https://t.example.com/cb?id=affS1}", "}"),
        ("https://t.example.com/cb?id={}", "{}"),
    ],
)
def test_braces_that_are_not_a_placeholder_are_refused(url, shown):
    """They would be sent as literal braces: the affiliate would get `{affS1` or `{AFF-123}`."""
    [message] = _errors(url=url)["url"]
    assert message.startswith(f"Not a placeholder: {shown}. ")
    assert "%7B" in message and "Valid placeholders: {affS1}," in message


def test_stray_brace_in_a_form_body_is_refused():
    errors = _errors(method="POST", body_template="click={affS1}&payout={payout")
    assert errors["body_template"][0].startswith("Not a placeholder: {payout.")


def test_adjacent_placeholders_are_not_stray_braces():
    _passes(url="https://t.example.com/cb/{affS1}{affS2}?p={payout}")


def test_a_port_delivery_would_refuse_is_refused_at_save(settings):
    settings.POSTBACK_ALLOWED_NETWORKS = []
    [message] = _errors(url="https://t.example.com:8080/cb?id={affS1}")["url"]
    assert message.startswith("Port 8080 is not allowed: postbacks to public addresses go to")


def test_allowed_ports_and_allowed_networks_take_any_listed_port(settings):
    settings.POSTBACK_ALLOWED_PORTS = [443, 8443]
    settings.POSTBACK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    _passes(url="https://t.example.com:8443/cb?id={affS1}")
    _passes(url="http://127.0.0.1:9001/cb?id={affS1}")


def test_aliases_and_any_case_are_accepted():
    _passes(url="https://t.example.com/cb?a={aff_s1}&b={AFFS2}&c={click_id}&d={transaction_id}")


# --- revenue gating -------------------------------------------------------------------------


def test_revenue_is_refused_while_the_setting_is_off():
    assert _errors(url="https://t.example.com/cb?r={revenue}")["url"] == [REVENUE_MESSAGE]


def test_sale_amount_alias_is_refused_while_the_setting_is_off():
    errors = _errors(url="https://t.example.com/cb?s={sale_amount}&t={SALEAMOUNT}")
    assert errors["url"] == [SALE_AMOUNT_MESSAGE]


def test_revenue_in_a_body_template_is_refused_while_off():
    errors = _errors(method="POST", body_template="r={revenue}")
    assert errors["body_template"] == [REVENUE_MESSAGE]


def test_revenue_is_allowed_when_the_setting_is_on():
    _passes(allow_revenue=True, url="https://t.example.com/cb?r={revenue}&s={saleAmount}")


def test_revenue_gate_reads_the_tracking_setting_by_default():
    values = postback_values(url="https://t.example.com/cb?r={revenue}")
    with pytest.raises(ValidationError):
        validate_postback_config(values)
    TrackingSettings.objects.update_or_create(pk=1, defaults={"allow_revenue_parameters": True})
    validate_postback_config(values)


# --- method, statuses, scope, currency ------------------------------------------------------


def test_method_must_be_get_or_post():
    assert _errors(method="PUT")["method"] == ["Choose GET or POST."]


def test_statuses_must_not_be_empty():
    assert _errors(statuses=[])["statuses"] == ["Pick at least one conversion status."]


def test_statuses_must_be_known():
    [message] = _errors(statuses=["approved", "paid"])["statuses"]
    assert message.startswith("Unknown conversion status 'paid'; valid statuses: pending,")


def test_offer_scope_with_no_offers_is_refused():
    errors = _errors(scope="offers", offers=[])
    assert errors["offers"] == ["Offer scope needs at least one offer."]


def test_offer_scope_is_not_checked_when_offers_are_not_given():
    _passes(scope="offers")


def test_global_scope_may_have_no_excluded_offers():
    _passes(scope="global", offers=[])


def test_unknown_scope_is_refused():
    assert "scope" in _errors(scope="some")


def test_conversion_types_when_given_must_not_be_empty():
    errors = _errors(conversion_types=[])
    assert errors["conversion_types"] == ["Pick at least one conversion type."]


def test_currency_must_be_an_iso_code_or_blank():
    _passes(currency="EUR")
    assert "currency" in _errors(currency="EURO")


# --- bodies ---------------------------------------------------------------------------------


def test_body_template_with_get_is_refused():
    errors = _errors(method="GET", body_template="a={affS1}")
    assert errors["body_template"] == [
        "A body template is only sent with POST; clear it or switch the method to POST."
    ]


def test_post_form_with_a_body_template_is_valid():
    _passes(method="POST", body_format="form", body_template="click={affS1}&p={payout}")


def test_post_form_without_a_body_template_is_valid():
    _passes(method="POST", body_format="form", body_template="")


def test_unknown_placeholder_in_the_body_is_refused():
    errors = _errors(method="POST", body_template="click={subid}")
    assert errors["body_template"][0].startswith("Unknown placeholder {subid}.")


def test_unknown_body_format_is_refused():
    assert "body_format" in _errors(method="POST", body_format="xml")


def _json(template: str, **overrides):
    return postback_values(method="POST", body_format="json", body_template=template, **overrides)


def test_json_body_with_placeholders_in_strings_and_values_is_valid():
    template = '{"click": "{affS1}", "payout": {payout}, "ext": {externalCid}, "n": {"s": 1}}'
    validate_postback_config(_json(template), allow_revenue=False)


def test_json_body_must_be_json():
    with pytest.raises(ValidationError) as raised:
        validate_postback_config(_json('{"click": {affS1}x}'), allow_revenue=False)
    [message] = raised.value.message_dict["body_template"]
    assert message.startswith("The body template is not valid JSON once rendered with sample")


def test_json_body_must_stay_json_when_values_are_missing():
    # "-12.50" is a number, "-null" is not.
    with pytest.raises(ValidationError) as raised:
        validate_postback_config(_json('{"payout": -{payout}}'), allow_revenue=False)
    [message] = raised.value.message_dict["body_template"]
    assert "with every value missing" in message


@pytest.mark.parametrize("depth", [33, 50_000])
def test_json_body_nested_deeper_than_the_limit_is_refused(depth):
    template = "[" * depth + "{payout}" + "]" * depth
    with pytest.raises(ValidationError) as raised:
        validate_postback_config(_json(template), allow_revenue=False)
    assert raised.value.message_dict["body_template"] == [
        "The body template nests deeper than 32 levels; 32 are allowed."
    ]


def test_json_body_nested_up_to_the_limit_is_valid():
    validate_postback_config(_json("[" * 32 + "{payout}" + "]" * 32), allow_revenue=False)


def test_json_format_needs_a_body_template():
    with pytest.raises(ValidationError) as raised:
        validate_postback_config(_json(""), allow_revenue=False)
    assert "needs a body template" in raised.value.message_dict["body_template"][0]


def test_json_body_with_an_unknown_placeholder_reports_only_the_placeholder():
    with pytest.raises(ValidationError) as raised:
        validate_postback_config(_json('{"a": {nope}}'), allow_revenue=False)
    [message] = raised.value.message_dict["body_template"]
    assert message.startswith("Unknown placeholder {nope}.")


# --- status map -----------------------------------------------------------------------------


def test_status_map_of_known_statuses_to_short_text_is_valid():
    _passes(status_map={"approved": "1", "rejected": "2"})


def test_status_map_with_an_unknown_status_is_refused():
    [message] = _errors(status_map={"paid": "1"})["status_map"]
    assert message.startswith("Unknown status 'paid' in the status map")


@pytest.mark.parametrize("value", [1, None, "x" * 65, ["1"]])
def test_status_map_values_must_be_short_text(value):
    assert "status_map" in _errors(status_map={"approved": value})


def test_status_map_must_be_an_object():
    assert "status_map" in _errors(status_map=["approved"])


# --- the admin form: the same validation, each problem once next to its field -----------------


def _form_errors(**overrides):
    from postbacks.admin.forms import PostbackForm

    form = PostbackForm(data=postback_form_data(AffiliateFactory(), **overrides))
    form.is_valid()
    return form.errors


def test_postback_form_reports_every_url_problem_of_the_instance():
    errors = _form_errors(url="https://{affS1}.example.com/?r={revenue}")
    assert len(errors["url"]) == 2


def test_postback_form_reports_a_missing_status_once():
    errors = _form_errors(statuses=[])
    assert len(errors["statuses"]) == 1


def test_postback_form_accepts_a_valid_postback():
    assert _form_errors() == {}
