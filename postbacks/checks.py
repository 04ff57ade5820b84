"""System checks for delivery settings (`manage.py check`; runserver and qcluster run them too
and refuse to start on an error)."""

import os

from django.conf import settings
from django.core.checks import Error, Warning, register

from postbacks import conf
from postbacks.transport import netguard
from postbacks.transport.policy import ca_bundle


@register()
def allowed_networks_are_networks(app_configs, **kwargs):
    """An entry that is not a network allows nothing: deliveries the operator meant to allow
    would be refused, so refuse to start instead and name the entry."""
    return [
        Error(
            f"POSTBACK_ALLOWED_NETWORKS has an invalid entry {entry!r}: {why}.",
            hint=(
                "Give networks in CIDR notation, separated by commas, such as "
                "127.0.0.0/8,10.1.0.0/16 (a single address is also fine: 10.1.2.3)."
            ),
            id="postbacks.E001",
        )
        for entry, why in netguard.invalid_allowed_networks()
    ]


@register()
def ca_bundle_is_a_file(app_configs, **kwargs):
    """Both senders load POSTBACK_CA_BUNDLE (when set) to verify certificates."""
    bundle = ca_bundle()
    if not bundle or os.path.isfile(bundle):
        return []
    return [
        Error(
            f"POSTBACK_CA_BUNDLE ({bundle!r}) is not a file: no HTTPS postback could be sent.",
            hint="Point it at a PEM file of CA certificates, or leave it empty for the default.",
            id="postbacks.E002",
        )
    ]


@register()
def claim_outlasts_the_request(app_configs, **kwargs):
    """A claim that expires while a request is still running lets the sweeper start a second
    attempt of the same delivery: a duplicate without any crash."""
    if conf.claim_seconds() > conf.total_timeout():
        return []
    return [
        Warning(
            f"POSTBACK_CLAIM_SECONDS ({conf.claim_seconds()}) is not above "
            f"POSTBACK_TOTAL_TIMEOUT ({conf.total_timeout():g}): a slow attempt can be "
            "sent a second time.",
            hint="Raise POSTBACK_CLAIM_SECONDS (default 60) or lower POSTBACK_TOTAL_TIMEOUT.",
            id="postbacks.W001",
        )
    ]


@register()
def drain_ends_before_the_task_timeout(app_configs, **kwargs):
    """django-q2 kills a task that runs past its timeout: a drain cut off that way leaves its
    in-flight requests unrecorded (they are sent again once their claims expire)."""
    if not conf.concurrent_dispatch():
        return []
    task_timeout = settings.Q_CLUSTER.get("timeout")
    longest = conf.drain_seconds() + conf.total_timeout()
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
