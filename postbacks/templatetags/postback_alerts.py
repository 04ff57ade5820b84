"""{% alerts_banner %}: the open alerts on the admin index, for users who may view alerts."""

from django import template

from postbacks import alerts
from trackdesk.masking import mask

register = template.Library()

# Alerts listed on the banner at most; the rest are counted, with a link to the alert list.
SHOWN = 10


@register.inclusion_tag("admin/postbacks/alerts_banner.html", takes_context=True)
def alerts_banner(context):
    request = context["request"]
    if not request.user.has_perm("postbacks.view_alert"):
        return {"alerts": []}
    open_alerts = list(alerts.open_alerts()[: SHOWN + 1])
    for alert in open_alerts:
        alert.error_shown = mask(alert.last_error)
    return {
        "alerts": open_alerts[:SHOWN],
        "more": len(open_alerts) > SHOWN,
        "can_acknowledge": request.user.has_perm("postbacks.acknowledge_alert"),
        "csrf_token": context.get("csrf_token"),
        "next": request.get_full_path(),
    }
