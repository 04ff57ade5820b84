"""Small HTML pieces the admin pages share: state badges, links, the recent-deliveries table,
the change history."""

from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from postbacks.models import DeliveryState

RECENT_DELIVERIES = 20
STATE_COLOURS = {
    DeliveryState.PENDING: "#6b7280",
    DeliveryState.RETRYING: "#b45309",
    DeliveryState.SUCCESS: "#15803d",
    DeliveryState.FAILED: "#b91c1c",
}


def state_badge(state: str):
    if not state:
        return "-"
    return format_html(
        '<span class="pb-badge" style="background: {}; color: #fff; padding: 2px 8px; '
        'border-radius: 9px; white-space: nowrap">{}</span>',
        STATE_COLOURS.get(state, "#6b7280"),
        DeliveryState(state).label,
    )


def change_link(obj, text=None):
    meta = obj._meta
    url = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, obj if text is None else text)


def log_url(**filters) -> str:
    return f"{reverse('admin:postbacks_delivery_changelist')}?{urlencode(filters)}"


def log_link(text: str, **filters):
    return format_html('<a href="{}">{}</a>', log_url(**filters), text)


def recent_deliveries(queryset, *, show: str, **log_filters):
    """The latest deliveries of `queryset` as a table, newest first, with a link to all of them.

    `show` names the other side of each row: "postback" (on a conversion's page) or
    "conversion" (on a postback's page).
    """
    rows = list(
        queryset.select_related("postback", "conversion").order_by("-created", "-pk")[
            : RECENT_DELIVERIES + 1
        ]
    )
    if not rows:
        return "No deliveries yet."
    more = len(rows) > RECENT_DELIVERIES
    body = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                change_link(d, d.created.strftime("%Y-%m-%d %H:%M:%S")),
                state_badge(d.state),
                _other_side(d, show),
                d.get_status_display(),
                d.last_status_code or "-",
                f"{d.last_duration_ms} ms" if d.last_duration_ms is not None else "-",
                "test" if d.is_test else "",
            )
            for d in rows[:RECENT_DELIVERIES]
        ),
    )
    footer = log_link(
        f"Latest {RECENT_DELIVERIES} shown: all in the postback log" if more else "Postback log",
        **log_filters,
    )
    return format_html(
        '<table class="pb-recent"><thead><tr><th>triggered</th><th>state</th><th>{}</th>'
        "<th>conversion status</th><th>HTTP</th><th>duration</th><th></th></tr></thead>"
        "<tbody>{}</tbody></table><p>{}</p>",
        show,
        body,
        footer,
    )


def _other_side(delivery, show: str):
    if show == "postback":
        return change_link(delivery.postback)
    if delivery.conversion_id is None:
        return "sample conversion"
    return change_link(delivery.conversion, delivery.conversion.transaction_id)


def audit_list(entries):
    """The postback's change history (postbacks/audit.py): when, who, from where, what."""
    rows = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                f"{entry.at:%Y-%m-%d %H:%M:%S}",
                entry.actor or "-",
                entry.get_source_display(),
                _audit_what(entry),
            )
            for entry in entries
        ),
    )
    if not rows:
        return "No recorded changes."
    return format_html(
        '<table class="pb-audit"><thead><tr><th>When (UTC)</th><th>Who</th><th>From</th>'
        "<th>What changed</th></tr></thead><tbody>{}</tbody></table>",
        rows,
    )


def _audit_what(entry):
    changes = format_html_join(
        "",
        "<li><strong>{}</strong>: {} → {}</li>",
        ((c["field"], _short(c["old"]), _short(c["new"])) for c in entry.changes),
    )
    head = "Created. " if entry.created else ""
    if entry.created:  # every setting is "new": the list would repeat the form
        changes = ""
    return format_html("{}{}<ul style='margin: 0'>{}</ul>", head, entry.note, changes)


def _short(value, limit: int = 200) -> str:
    text = "-" if value in (None, "", [], {}) else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
