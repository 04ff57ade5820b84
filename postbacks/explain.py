"""What each status change of a conversion did with each postback of its affiliate: sent (its
deliveries), waiting, or not sent and why. The conversion page's status history reads it.

The reasons come from matching.not_fired_reasons, the rules that chose the deliveries, applied
to the postbacks' settings as they are now; a change that matches now but has no delivery says
what may explain it (the postback is newer, the log was pruned, the settings changed since).
"""

from dataclasses import dataclass, field
from datetime import timedelta

from django.db.models import Prefetch, Q
from django.utils import timezone

from affiliates.models import Offer
from conversions.models import Conversion, ConversionStatusChange, ConversionType
from postbacks import conf
from postbacks.matching import NotFired, not_fired_reasons
from postbacks.models import Delivery, DeliveryState, Postback, TrackingSettings
from postbacks.placeholders import lookup
from postbacks.rendering import find_placeholders, header_text, postback_values


@dataclass
class Outcome:
    """One postback for one status change: its deliveries (resends after their original), or
    the reasons it was not sent."""

    postback: Postback
    deliveries: list[Delivery] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was sent differently, e.g. blanks

    @property
    def verdict(self) -> str:
        """ "delivered", "failed", "waiting" (open: queued, retrying or held back) or "not sent"."""
        if not self.deliveries:
            return "not sent"
        states = {delivery.state for delivery in self.deliveries}
        if DeliveryState.SUCCESS in states:
            return "delivered"
        if states & {DeliveryState.PENDING, DeliveryState.RETRYING}:
            return "waiting"
        return "failed"


@dataclass
class ChangeOutcomes:
    change: ConversionStatusChange
    outcomes: list[Outcome]


def status_history(conversion: Conversion) -> list[ChangeOutcomes]:
    """Every status change of the conversion, oldest first, with an outcome per postback of
    its affiliate (and per other postback that has a delivery for it). Six queries."""
    changes = list(conversion.status_changes.order_by("created", "pk"))
    deliveries = list(
        conversion.deliveries.filter(is_test=False, status_change__isnull=False)
        .with_waiting_for()
        .order_by("created", "pk")
    )
    postbacks = _postbacks(conversion, {d.postback_id for d in deliveries})
    allow_revenue = TrackingSettings.load().allow_revenue_parameters
    notes = {p.pk: _blank_amounts(p) for p in postbacks} if not allow_revenue else {}
    sent = {}
    for delivery in deliveries:
        sent.setdefault((delivery.status_change_id, delivery.postback_id), []).append(delivery)
    return [
        ChangeOutcomes(
            change,
            [
                _outcome(
                    postback,
                    conversion,
                    change,
                    sent.get((change.pk, postback.pk), []),
                    notes.get(postback.pk, []),
                )
                for postback in postbacks
            ],
        )
        for change in changes
    ]


def _postbacks(conversion: Conversion, with_deliveries: set[int]) -> list[Postback]:
    return list(
        Postback.objects.filter(Q(affiliate_id=conversion.affiliate_id) | Q(pk__in=with_deliveries))
        .prefetch_related(
            Prefetch("offers", queryset=Offer.objects.only("id")),
            Prefetch("conversion_types", queryset=ConversionType.objects.only("id")),
        )
        .order_by("name", "pk")
    )


def _blank_amounts(postback: Postback) -> list[str]:
    """While the tracking setting is off, {revenue} and {saleAmount} are sent blank."""
    values = postback_values(postback)
    text = f"{values['url']} {values['body_template']} {header_text(values)}"
    gated = [p.token for p in filter(None, map(lookup, find_placeholders(text))) if p.gated]
    if not gated:
        return []
    return [
        f"{', '.join(gated)} sent blank: 'Allow revenue and sale amount parameters' is off "
        "(Settings → Tracking)"
    ]


def _outcome(postback, conversion, change, deliveries, notes) -> Outcome:
    if deliveries:
        return Outcome(postback, deliveries, notes=notes)
    reasons = not_fired_reasons(postback, conversion, change.to_status)
    if reasons:
        return Outcome(
            postback, reasons=[_describe(r, postback, conversion, change) for r in reasons]
        )
    return Outcome(postback, reasons=[_matches_now(postback, change)])


def _describe(reason: NotFired, postback, conversion, change) -> str:
    if reason == NotFired.PAUSED:
        return f"postback paused: {postback.paused_reason}"
    if reason == NotFired.SCOPE:
        how = "excluded" if postback.scope == "global" else "not among the postback's offers"
        return f"offer out of scope ({conversion.offer} is {how})"
    if reason == NotFired.TYPE:
        return f"conversion type {conversion.conversion_type} not selected"
    if reason == NotFired.STATUS:
        return f"status {change.get_to_status_display()} not selected"
    return reason.label


def _matches_now(postback, change) -> str:
    if postback.created > change.created:
        return "the postback was added after this change"
    kept = conf.log_retention_days()
    if kept and change.created < timezone.now() - timedelta(days=kept):
        return f"no delivery in the log: finished deliveries are kept {kept} days"
    if postback.updated > change.created:
        return "matches the postback's settings now; they were changed after this change"
    return "no delivery recorded for this change"


def delivery_note(delivery: Delivery) -> str:
    """A few words on where the delivery stands, for the history next to its state."""
    if delivery.state == DeliveryState.SUCCESS:
        note = f"HTTP {delivery.last_status_code}" if delivery.last_status_code else "delivered"
    elif delivery.state == DeliveryState.FAILED:
        note = f"after {delivery.attempts} attempt{'s' if delivery.attempts != 1 else ''}"
    elif getattr(delivery, "waiting_for_id", None):
        note = "waiting for an earlier status"
    elif delivery.waiting_for_rate:
        note = f"waiting for a rate ({delivery.waiting_for_rate})"
    elif delivery.state == DeliveryState.RETRYING:
        note = f"next try {timezone.localtime(delivery.next_attempt_at):%Y-%m-%d %H:%M}"
    else:
        note = "queued"
    return f"resend; {note}" if delivery.original_uid else note
