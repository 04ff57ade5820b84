"""The postback log's list page: its columns, filters, search and CSV export. DeliveryAdmin
(log.py) takes it as a mixin; the delivery page itself is log.py's and delivery_page.py's."""

import contextlib
import uuid

from django.contrib import admin
from django.db.models import Q
from django.utils import timezone
from django.utils.html import format_html

from conversions.models import Click, Conversion
from postbacks.admin.html import change_link, state_badge
from postbacks.export import (
    affiliate_click_id,
    click_model_field,
    endpoint_host,
    max_attempts,
    other_click_fields,
    waiting_note,
)
from trackdesk.prefix import StartsWithLower

LOG_TITLE = "Postback log"
# A search that matches more conversions than this shows the deliveries of the first ones and
# says so: the page stays fast for a one-letter prefix too.
MAX_CONVERSIONS = 1000


class HttpStatusClassFilter(admin.SimpleListFilter):
    title = "HTTP status class"
    parameter_name = "http"
    RANGES = {"2xx": (200, 299), "3xx": (300, 399), "4xx": (400, 499), "5xx": (500, 599)}

    def lookups(self, request, model_admin):
        return [*((name, name) for name in self.RANGES), ("none", "No response")]

    def queryset(self, request, queryset):
        if self.value() == "none":
            return queryset.filter(last_status_code__isnull=True)
        if self.value() in self.RANGES:
            return queryset.filter(last_status_code__range=self.RANGES[self.value()])
        return queryset


def conversions_matching(term: str) -> tuple[list, bool]:
    """Conversions whose transaction id, click id (cid) or affiliate click id (affS1, or the
    affiliate's click field) starts with `term`, in any case: at most MAX_CONVERSIONS of
    their ids, and whether there were more. Each part reads one index (trackdesk/prefix.py)."""
    conversions = Conversion.objects.order_by()
    clicks = Click.objects.order_by()
    parts = [
        conversions.filter(StartsWithLower("transaction_id", term)),
        conversions.filter(click__in=clicks.filter(StartsWithLower("cid", term))),
        conversions.filter(click__in=clicks.filter(StartsWithLower("aff_s1", term))),
    ]
    for field in other_click_fields():
        # Only those affiliates' clicks (the click's affiliate index), not every click.
        theirs = clicks.filter(affiliate__click_field=field)
        found = theirs.filter(StartsWithLower(click_model_field(field), term))
        parts.append(conversions.filter(click__in=found))
    ids = set()
    for part in parts:
        ids.update(part.values_list("pk", flat=True)[: MAX_CONVERSIONS + 1 - len(ids)])
        if len(ids) > MAX_CONVERSIONS:
            return list(ids)[:MAX_CONVERSIONS], True
    return list(ids), False


class LogListMixin:
    """The change list of DeliveryAdmin."""

    list_display = [
        "triggered",
        "state_column",
        "transaction_link",
        "click_id",
        "affiliate",
        "postback_link",
        "endpoint",
        "last_status_code",
        "attempts_column",
        "next_try",
    ]
    list_display_links = ["transaction_link"]
    list_filter = [
        "state",
        "postback__affiliate",
        "postback",
        HttpStatusClassFilter,
        "is_test",
        "created",
    ]
    # get_search_results below; "url:" searches the URLs sent (a scan: slow on a large log).
    search_fields = ["=conversion__transaction_id"]
    search_help_text = (
        "The start of a transaction ID, click ID (cid) or affiliate click ID (affS1 or the "
        "affiliate's click field), in any case; or a whole conversion or delivery ID. Start "
        "with url: to search the URLs sent (slower on a large log)."
    )
    list_select_related = ["postback__affiliate", "conversion__click"]
    show_full_result_count = False
    list_per_page = 50

    def get_queryset(self, request):
        return super().get_queryset(request).with_waiting_for()

    def changelist_view(self, request, extra_context=None):
        # Without the app menu on the left, the ten columns fit 1280 px next to the filters.
        context = {"title": LOG_TITLE, "is_nav_sidebar_enabled": False}
        return super().changelist_view(request, {**context, **(extra_context or {})})

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        if term.lower().startswith("url:"):
            part = term[4:].strip()
            return queryset.filter(attempt_log__url__icontains=part).distinct(), True
        ids, more = conversions_matching(term)
        if more:
            self.message_user(
                request,
                f"More than {MAX_CONVERSIONS:,} conversions match “{term}”: the deliveries of "
                f"{MAX_CONVERSIONS:,} of them are listed. Type more of the ID to narrow it.",
            )
        match = Q(conversion_id__in=ids)
        with contextlib.suppress(ValueError):
            key = uuid.UUID(term)
            match |= Q(conversion_id=key) | Q(uid=key)
        return queryset.filter(match), False

    @admin.display(description="triggered", ordering="created")
    def triggered(self, delivery):
        return timezone.localtime(delivery.created).strftime("%Y-%m-%d %H:%M:%S")

    @admin.display(description="state", ordering="state")
    def state_column(self, delivery):
        note = waiting_note(delivery)
        if not note:
            return state_badge(delivery.state)
        return format_html(
            '{}<br><small class="pb-waiting">{}</small>', state_badge(delivery.state), note
        )

    @admin.display(description="transaction ID")
    def transaction_link(self, delivery):
        # The list links it to the delivery; the conversion is one click further.
        if delivery.conversion is None:
            return "sample (test)"
        return format_html(
            '{}<br><small class="pb-status">{}</small>',
            delivery.conversion.transaction_id,
            delivery.get_status_display(),
        )

    @admin.display(description="affiliate click ID")
    def click_id(self, delivery):
        return affiliate_click_id(delivery) or "-"

    @admin.display(description="affiliate", ordering="postback__affiliate__name")
    def affiliate(self, delivery):
        return delivery.postback.affiliate

    @admin.display(description="postback", ordering="postback__name")
    def postback_link(self, delivery):
        return change_link(delivery.postback)

    @admin.display(description="endpoint")
    def endpoint(self, delivery):
        return endpoint_host(delivery) or "-"

    @admin.display(description="attempts", ordering="attempts")
    def attempts_column(self, delivery):
        return f"{delivery.attempts} of {max_attempts()}"

    @admin.display(description="next try", ordering="next_attempt_at")
    def next_try(self, delivery):
        if delivery.is_finished:
            return "-"
        return timezone.localtime(delivery.next_attempt_at).strftime("%Y-%m-%d %H:%M:%S")
