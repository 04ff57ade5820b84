"""How the postback admin shows postbacks: the list's columns (endpoint, state, 24-hour success
rate, last delivery, a short scope label) and its Activate / Deactivate actions, and the page of
someone who may view postbacks but not change them (secrets masked, statuses in words)."""

from urllib.parse import urlsplit

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.db.models import Subquery
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.timesince import timesince

from conversions.models import ConversionStatus
from postbacks import audit, stats
from postbacks.admin.html import state_badge
from postbacks.delivery import breaker
from postbacks.models import AuditSource, Scope
from trackdesk.masking import mask, shown_header_list

# Fields a view-only user sees through a method instead: masked, or in words (get_fieldsets).
VIEW_ONLY_FIELDS = {
    "url": "masked_url",
    "body_template": "masked_body",
    "headers": "masked_headers",
    "statuses": "statuses_shown",
    "status_map": "status_map_shown",
}


class StateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [
            ("active", "Active"),
            ("paused", "Paused automatically"),
            ("off", "Switched off"),
        ]

    def queryset(self, request, queryset):
        if self.value() == "active":
            return queryset.filter(active=True)
        if self.value() == "paused":
            return queryset.filter(active=False).exclude(paused_reason="")
        if self.value() == "off":
            return queryset.filter(active=False, paused_reason="")
        return queryset


class PostbackChangeList(ChangeList):
    """The list's page, with each row's 24-hour outcome and newest delivery read for the whole
    page at once (stats.py: a few grouped queries), never one query per row."""

    def get_results(self, request):
        super().get_results(request)
        rows = list(self.result_list)
        ids = [postback.pk for postback in rows]
        finished = stats.finished_in_window(ids, "24h")
        newest = stats.last_deliveries(ids)
        for postback in rows:
            postback.finished_24h = finished.get(postback.pk)
            postback.newest_delivery = newest.get(postback.pk)
        self.result_list = rows


class PostbackDisplayMixin:
    """For PostbackAdmin: its list, its list actions and its view-only page."""

    list_display = [
        "name",
        "affiliate",
        "endpoint",
        "scope_label",
        "state",
        "success_24h",
        "last_delivery",
    ]
    list_filter = [StateFilter, "affiliate", "method", "scope"]
    search_fields = ["name", "affiliate__name", "url", "=id"]
    search_help_text = "Part of a postback's name, its affiliate's name or its URL; or its id."
    list_select_related = ["affiliate"]

    def get_changelist(self, request, **kwargs):
        return PostbackChangeList

    def get_queryset(self, request):
        # Sorting by the last delivery: one probe of the (postback, -created) index per postback.
        newest = stats.latest_delivery().values("created")[:1]
        queryset = super().get_queryset(request).annotate(last_delivery_at=Subquery(newest))
        return queryset.prefetch_related("offers")

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), *VIEW_ONLY_FIELDS.values()]

    def set_active(self, request, obj, active: bool) -> None:
        before = audit.snapshot(obj)
        super().set_active(request, obj, active)
        if active and obj.paused_reason:  # resumed by hand, as ticking Active on its page
            breaker.resume(obj)
        audit.record(obj, before, user=request.user, source=AuditSource.ADMIN)

    # --- the list's columns ------------------------------------------------------------------

    @admin.display(description="endpoint", ordering="url")
    def endpoint(self, postback):
        host = urlsplit(postback.url).hostname or "?"
        # Long hosts wrap at their dots, not mid-word.
        wrapped = format_html_join(mark_safe(".<wbr>"), "{}", ((part,) for part in host.split(".")))
        return format_html(
            '<span title="{}">{}</span> <small>{}</small>',
            mask(postback.url),
            wrapped,
            postback.method,
        )

    @admin.display(description="scope", ordering="scope")
    def scope_label(self, postback):
        """A short label; the offers it names are listed in its title (on hover)."""
        offers = sorted(offer.name for offer in postback.offers.all())
        n = len(offers)
        if postback.scope == Scope.OFFERS:
            label, title = (f"{n} offer" if n == 1 else f"{n} offers"), ", ".join(offers)
        else:
            label, title = (f"All but {n}" if n else "All offers"), "Except " + ", ".join(offers)
        if not n:
            return label
        return format_html('<span class="pb-hover" title="{}">{}</span>', title, label)

    @admin.display(description="state", ordering="active")
    def state(self, postback):
        if postback.active:
            return "Active"
        if postback.paused_reason:
            return format_html(
                '<span class="pb-hover pb-paused" title="{}">Paused</span>',
                mask(postback.paused_reason),
            )
        return mark_safe('<span class="pb-off">Inactive</span>')

    @admin.display(description="success 24 h")
    def success_24h(self, postback):
        finished = getattr(postback, "finished_24h", None)
        total = finished.delivered + finished.failed if finished else 0
        if not total:
            return "-"
        rate = 100 * finished.delivered / total
        shown = f"{rate:.0f} %" if rate in (0, 100) else f"{rate:.1f} %"
        return format_html(
            '<span title="{} delivered, {} failed in the last 24 hours">{}</span> '
            "<small>of {}</small>",
            f"{finished.delivered:,}",
            f"{finished.failed:,}",
            shown,
            f"{total:,}",
        )

    @admin.display(description="last delivery", ordering="last_delivery_at")
    def last_delivery(self, postback):
        delivery = getattr(postback, "newest_delivery", None)
        if delivery is None:
            return "-"
        return format_html(
            '{} <small title="{} UTC">{} ago{}</small>',
            state_badge(delivery.state),
            f"{delivery.created:%Y-%m-%d %H:%M:%S}",
            timesince(delivery.created, depth=1),
            ", test" if delivery.is_test else "",
        )

    # --- the view-only page ------------------------------------------------------------------

    @admin.display(description="URL template")
    def masked_url(self, postback):
        return format_html('<code style="word-break: break-all">{}</code>', mask(postback.url))

    @admin.display(description="Body template")
    def masked_body(self, postback):
        if not postback.body_template:
            return "-"
        return format_html(
            '<pre style="white-space: pre-wrap; margin: 0">{}</pre>', mask(postback.body_template)
        )

    @admin.display(description="Request headers")
    def masked_headers(self, postback):
        shown = shown_header_list(postback.headers)
        return (
            format_html_join(
                "", "<div><code>{}: {}</code></div>", ((h["name"], h["value"]) for h in shown)
            )
            or "-"
        )

    @admin.display(description="Conversion statuses")
    def statuses_shown(self, postback):
        return status_words(postback.statuses) or "-"

    @admin.display(description="Value sent as {status}")
    def status_map_shown(self, postback):
        pairs = [
            (label, postback.status_map[value])
            for value, label in ConversionStatus.choices
            if value in (postback.status_map or {})
        ]
        if not pairs:
            return "Our status names (pending, approved …)"
        return format_html_join("", "<div>{} → <code>{}</code></div>", pairs)


def status_words(statuses) -> str:
    """["pending", "approved"] → "Pending, Approved", in the statuses' own order."""
    chosen = set(statuses or ())
    return ", ".join(label for value, label in ConversionStatus.choices if value in chosen)
