"""Creating the postback the assistant proposed: the assistant's one write, and the existing
postback that makes a second creation unnecessary."""

from django.core.exceptions import ValidationError
from django.db import transaction

from affiliates.models import Affiliate
from postbacks.assistant.analysis import Analysis
from postbacks.models import Postback, Scope
from postbacks.validation import validate_postback_config


def existing_postback(affiliate, proposal: dict) -> Postback | None:
    """The affiliate's postback that already sends this proposal (same URL template and
    method), or None: a second one would send every conversion to the tracker twice."""
    if affiliate is None or not proposal or not proposal.get("url"):
        return None
    same = Postback.objects.filter(
        affiliate=affiliate, url=proposal["url"], method=proposal["method"]
    )
    return same.order_by("pk").first()


def refusals_by_field(
    analysis: Analysis, *, conversion_types, statuses, scope=Scope.GLOBAL, offers=(), currency=""
) -> dict[str, list[str]]:
    """Why the proposal cannot be saved with these choices, per field: the postback form's
    checks on it as the assistant creates it (a form body when it is a POST). Empty when it
    can be."""
    values = {
        **analysis.postback,
        "statuses": list(statuses),
        "conversion_types": list(conversion_types),
        "scope": scope,
        "offers": list(offers),
        "currency": currency,
        "body_format": "form",
        "body_template": "",
    }
    try:
        validate_postback_config(values)
    except ValidationError as error:
        return error.message_dict
    return {}


def refusals(analysis: Analysis, **choices) -> list[str]:
    """refusals_by_field's messages in one list."""
    return [
        message
        for messages in refusals_by_field(analysis, **choices).values()
        for message in messages
    ]


@transaction.atomic
def create_postback(
    analysis: Analysis,
    affiliate,
    *,
    name,
    conversion_types,
    statuses,
    scope=Scope.GLOBAL,
    offers=(),
    currency="",
) -> tuple[Postback, bool]:
    """Create the proposed postback, inactive until a manager reviews it; or, when the affiliate
    already has it, return that one: (postback, created).

    The caller checks `refusals` first. The affiliate's
    click-id token is filled in when they have none, and their click field stored, so their
    tracking links carry the token where the postback reads it back.
    """
    proposal = analysis.postback
    # The affiliate's row lock makes two clicks on "Create" (or two API calls) in flight at
    # once create one postback: the second waits here, then finds the first.
    Affiliate.objects.select_for_update().filter(pk=affiliate.pk).first()
    found = existing_postback(affiliate, proposal)
    if found is not None:
        return found, False
    postback = Postback.objects.create(
        name=name,
        affiliate=affiliate,
        url=proposal["url"],
        method=proposal["method"],
        statuses=list(statuses),
        status_map=proposal["status_map"],
        scope=scope,
        currency=currency,
        active=False,
    )
    postback.conversion_types.set(conversion_types)
    postback.offers.set(offers)
    if not affiliate.click_id_token and analysis.click_id_token:
        affiliate.click_id_token = analysis.click_id_token
        affiliate.save(update_fields=["click_id_token"])
    return postback, True
