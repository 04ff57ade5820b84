"""System checks for delivery settings that only fail under faults (`manage.py check`)."""

from django.conf import settings
from django.core.checks import Warning, register


@register()
def claim_outlasts_the_request(app_configs, **kwargs):
    """A claim that expires while a request is still running lets the sweeper start a second
    attempt of the same delivery: a duplicate without any crash."""
    if settings.POSTBACK_CLAIM_SECONDS > settings.POSTBACK_TOTAL_TIMEOUT:
        return []
    return [
        Warning(
            f"POSTBACK_CLAIM_SECONDS ({settings.POSTBACK_CLAIM_SECONDS}) is not above "
            f"POSTBACK_TOTAL_TIMEOUT ({settings.POSTBACK_TOTAL_TIMEOUT:g}): a slow attempt can be "
            "sent a second time.",
            hint="Raise POSTBACK_CLAIM_SECONDS (default 60) or lower POSTBACK_TOTAL_TIMEOUT.",
            id="postbacks.W001",
        )
    ]
