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


@register()
def drain_ends_before_the_task_timeout(app_configs, **kwargs):
    """django-q2 kills a task that runs past its timeout: a drain cut off that way leaves its
    in-flight requests unrecorded (they are sent again once their claims expire)."""
    if not settings.POSTBACK_CONCURRENT_DISPATCH:
        return []
    task_timeout = settings.Q_CLUSTER.get("timeout")
    longest = settings.POSTBACK_DRAIN_SECONDS + settings.POSTBACK_TOTAL_TIMEOUT
    if task_timeout is None or longest < task_timeout:
        return []
    return [
        Warning(
            f"POSTBACK_DRAIN_SECONDS + POSTBACK_TOTAL_TIMEOUT ({longest:g} s) is not below "
            f"django-q2's task timeout ({task_timeout} s): a drain can be killed mid-send.",
            hint="Lower POSTBACK_DRAIN_SECONDS (default 20) or raise Q_CLUSTER['timeout'].",
            id="postbacks.W002",
        )
    ]
