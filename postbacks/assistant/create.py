"""Creating the postback the assistant proposed: the assistant's one write."""

from django.db import transaction

from postbacks.assistant.analysis import Analysis
from postbacks.assistant.clickfield import remember_click_field
from postbacks.models import Postback


@transaction.atomic
def create_postback(analysis: Analysis, affiliate, *, name, conversion_types, statuses):
    """Create the proposed postback, inactive until a manager reviews it.

    The caller validates first (postbacks.validation.validate_postback_config). The affiliate's
    click-id token is filled in when they have none, and their click field stored, so their
    tracking links carry the token where the postback reads it back.
    """
    proposal = analysis.postback
    postback = Postback.objects.create(
        name=name,
        affiliate=affiliate,
        url=proposal["url"],
        method=proposal["method"],
        statuses=list(statuses),
        status_map=proposal["status_map"],
        active=False,
    )
    postback.conversion_types.set(conversion_types)
    if not affiliate.click_id_token and analysis.click_id_token:
        affiliate.click_id_token = analysis.click_id_token
        affiliate.save(update_fields=["click_id_token"])
    remember_click_field(affiliate)
    return postback
