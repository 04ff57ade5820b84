"""Postback configuration, the tracking setting, the delivery log (deliveries with the open,
due and unclaimed filters every part of the engine shares, attempts), endpoint health for the
circuit breaker, the dashboard's roll-up rows, alerts, and the audit trail of postback changes."""

import functools
import os
import socket
import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from affiliates.models import Affiliate, Offer
from conversions.models import (
    Conversion,
    ConversionStatus,
    ConversionStatusChange,
    ConversionType,
)
from trackdesk import currencies
from trackdesk.currencies import validate_currency


class Scope(models.TextChoices):
    GLOBAL = "global", "Global: every offer except the listed ones"
    OFFERS = "offers", "Offer scope: only the listed offers"


class Method(models.TextChoices):
    GET = "GET", "GET (parameters in the URL)"
    POST = "POST", "POST (parameters in the body)"


class BodyFormat(models.TextChoices):
    FORM = "form", "Form-encoded parameters"
    JSON = "json", "JSON body template"


class Postback(models.Model):
    name = models.CharField(max_length=200)
    affiliate = models.ForeignKey(Affiliate, on_delete=models.PROTECT, related_name="postbacks")
    scope = models.CharField(max_length=10, choices=Scope.choices, default=Scope.GLOBAL)
    offers = models.ManyToManyField(
        Offer,
        blank=True,
        related_name="+",
        help_text="Global scope: offers excluded. Offer scope: the only offers included.",
    )
    conversion_types = models.ManyToManyField(ConversionType, related_name="+")
    statuses = models.JSONField(
        default=list,
        help_text="Conversion statuses that fire this postback (on create and on change).",
    )
    currency = models.CharField(
        "custom currency",
        max_length=3,
        blank=True,
        choices=currencies.CHOICES,
        validators=[validate_currency],
        help_text="Send amounts converted into this currency. Blank: the conversion's currency.",
    )
    method = models.CharField(max_length=4, choices=Method.choices, default=Method.GET)
    url = models.TextField("URL template", max_length=4000)
    body_format = models.CharField(
        max_length=4, choices=BodyFormat.choices, default=BodyFormat.FORM, blank=True
    )
    body_template = models.TextField(
        blank=True,
        max_length=20000,
        help_text="POST only. Form: key={placeholder} pairs joined by &; blank sends the URL's "
        "query parameters as the body. JSON: a JSON document with placeholders.",
    )
    status_map = models.JSONField(
        default=dict,
        blank=True,
        help_text='What {status} renders as, per status, e.g. {"approved": "1", "rejected": "2"}.',
    )
    # A list of {"name", "value"} objects rather than one object: PostgreSQL's jsonb reorders
    # object keys, and the form and API should show the headers in the order they were written.
    headers = models.JSONField(
        default=list,
        blank=True,
        help_text="Extra request headers, e.g. X-Api-Key; values may use placeholders.",
    )
    active = models.BooleanField(default=True)
    paused_reason = models.TextField(
        blank=True,
        help_text="Why the postback was paused automatically (cleared when it is resumed).",
    )
    # Standard Webhooks signing (postbacks/transport/signing.py); blank: requests are not signed.
    signing_secret = models.CharField(max_length=100, blank=True, editable=False)
    previous_signing_secret = models.CharField(max_length=100, blank=True, editable=False)
    signing_secret_rotated_at = models.DateTimeField(null=True, blank=True, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["affiliate__name", "name"]
        indexes = [models.Index(fields=["affiliate", "active"])]
        permissions = [("send_test_postback", "Can send a test postback")]

    def __str__(self) -> str:
        return self.name

    def fires_on_status(self, status: str) -> bool:
        return status in self.statuses

    def covers_offer(self, offer_id: int) -> bool:
        """Whether the scope includes the offer (uses prefetched offers when there are some)."""
        listed = any(offer.pk == offer_id for offer in self.offers.all())
        return listed if self.scope == Scope.OFFERS else not listed


class TrackingSettings(models.Model):
    """The single row of tracking settings (Settings → Tracking)."""

    allow_revenue_parameters = models.BooleanField(
        "Allow revenue and sale amount parameters in affiliate postbacks",
        default=False,
        help_text="While off, {revenue} and {saleAmount} cannot be used in postbacks and are "
        "never sent.",
    )

    class Meta:
        verbose_name = "tracking settings"
        verbose_name_plural = "tracking settings"

    def __str__(self) -> str:
        return "Tracking settings"

    @classmethod
    def load(cls) -> "TrackingSettings":
        obj, _ = cls.objects.get_or_create(pk=1)
        return obj


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Pending"
    RETRYING = "retrying", "Retrying"
    SUCCESS = "success", "Success"
    FAILED = "failed", "Failed"


# Open: the delivery may still be sent (a worker claims it when it is due). Finished: never again.
OPEN_STATES = (DeliveryState.PENDING, DeliveryState.RETRYING)
FINISHED_STATES = (DeliveryState.SUCCESS, DeliveryState.FAILED)


class DeliveryQuerySet(models.QuerySet):
    """The delivery states and claims that every query of the engine and the dashboard shares."""

    def open(self):
        return self.filter(state__in=OPEN_STATES)

    def due(self, now):
        """Open and whose next attempt is at or before `now`."""
        return self.open().filter(next_attempt_at__lte=now)

    def unclaimed(self, now):
        """Not held by a worker: never claimed, or the claim ran out before `now`."""
        return self.filter(models.Q(claimed_until__isnull=True) | models.Q(claimed_until__lt=now))

    def not_waiting(self):
        """Not waiting for an earlier status change of the same conversion to the same postback:
        no open delivery of that (postback, conversion) has an earlier status change. The claims
        filter on it, so a receiver gets each conversion's statuses in the order they happened.
        Served by the partial index delivery_open_per_conversion."""
        return self.filter(~models.Exists(_open_earlier()))

    def with_waiting_for(self):
        """Annotate waiting_for_id: for an open delivery, the earliest open delivery it waits
        for (None: it may go). The log shows it (Delivery.waiting_for for one row)."""
        earliest = _open_earlier().order_by("status_change_id")
        return self.annotate(waiting_for_id=models.Subquery(earliest.values("pk")[:1]))


def _open_earlier():
    """Open deliveries of the same postback and conversion as the outer query's delivery, for
    an earlier status change. Status-change ids grow with each change of one conversion, since
    services.py writes a conversion's changes under a lock on its row; a delivery without a
    status change (a test send, or one older than the link) neither waits nor holds back.

    The postback is compared as +postback_id, which keeps SQLite off the postback's index: its
    planner, without statistics, took that one, and every probe of every claim then read all of
    a postback's deliveries, ever (a claim of 250 among 2,000 open rows took 0.2 s). A
    conversion has a handful of rows, so its index is the one to use; PostgreSQL picks by its
    statistics either way."""
    return Delivery.objects.alias(
        postback_unindexed=models.Func(
            "postback_id", template="+%(expressions)s", output_field=models.BigIntegerField()
        )
    ).filter(
        postback_unindexed=models.OuterRef("postback_id"),
        conversion_id=models.OuterRef("conversion_id"),
        status_change_id__lt=models.OuterRef("status_change_id"),
        state__in=OPEN_STATES,
    )


class Delivery(models.Model):
    """One postback to send for one status change of a conversion (postback, status change)."""

    uid = models.UUIDField("delivery ID", default=uuid.uuid4, unique=True, editable=False)
    # Every index is written on every delivery insert (up to one per matching postback per
    # conversion event), so none is kept twice: postback and conversion are served by the
    # (postback, -created) and (conversion, -created) indexes below, resend_of by a partial one.
    postback = models.ForeignKey(
        Postback, on_delete=models.PROTECT, related_name="deliveries", db_index=False
    )
    conversion = models.ForeignKey(
        Conversion,
        on_delete=models.PROTECT,
        related_name="deliveries",
        db_index=False,
        null=True,
        blank=True,
        help_text="Blank only for a test send rendered with the built-in sample conversion.",
    )
    status = models.CharField("conversion status", max_length=20, choices=ConversionStatus.choices)
    status_change = models.ForeignKey(
        ConversionStatusChange,
        on_delete=models.PROTECT,
        related_name="deliveries",
        null=True,
        blank=True,
        help_text="The change into `status` this delivery announces; blank for a test send.",
    )
    is_test = models.BooleanField(default=False, db_index=True)
    state = models.CharField(
        max_length=10, choices=DeliveryState.choices, default=DeliveryState.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claimed_until = models.DateTimeField(null=True, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField("last HTTP status", null=True, blank=True)
    last_duration_ms = models.PositiveIntegerField("duration (ms)", null=True, blank=True)
    last_error = models.TextField(blank=True)
    # "EUR→GBP" while the delivery waits for that exchange rate (postbacks/money.py sends it
    # when the rate is saved); blank otherwise. Kept apart from endpoint failures.
    waiting_for_rate = models.CharField(max_length=7, blank=True, default="")
    created = models.DateTimeField("triggered", default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # A resend (postbacks/delivery/resend.py) is a new delivery of a finished one's status change,
    # sent with the original's id (X-Postback-Id, {deliveryId}) so the receiver can drop it if it
    # has the first one. resend_of points at the original (never at another resend) for the
    # log's links, and is cleared if log retention prunes the original first; original_uid keeps
    # the id to send all the same.
    resend_of = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        related_name="resends",
        null=True,
        blank=True,
        editable=False,
        db_index=False,
    )
    original_uid = models.UUIDField(null=True, blank=True, editable=False)

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        verbose_name = "delivery"
        verbose_name_plural = "postback log"
        ordering = ["-created"]
        constraints = [
            # The once-only key: a status change fires each postback once, however often the
            # event is announced or a task runs; a later change into the same status is a new key.
            models.UniqueConstraint(
                fields=["postback", "status_change"],
                condition=models.Q(is_test=False, original_uid__isnull=True),
                name="delivery_once_per_status_change",
            ),
            models.CheckConstraint(
                condition=models.Q(is_test=True) | models.Q(conversion__isnull=False),
                name="delivery_conversion_unless_test",
            ),
        ]
        indexes = [
            models.Index(fields=["state", "next_attempt_at"]),
            models.Index(fields=["postback", "-created"]),
            models.Index(fields=["conversion", "-created"]),
            models.Index(fields=["finished_at"]),  # the dashboard's roll-up (postbacks/stats.py)
            # The log filtered by state (newest first) and the dashboard's open deliveries: it
            # holds every column those queries read, so they never touch the table.
            models.Index(fields=["state", "created", "postback", "is_test"]),
            # The claims' "no earlier open delivery" test (DeliveryQuerySet.not_waiting): open
            # rows only, so it stays small however long the log grows.
            models.Index(
                fields=["conversion", "postback", "status_change"],
                condition=models.Q(state__in=OPEN_STATES),
                name="delivery_open_per_conversion",
            ),
            # A resend's link to its original (the log's links, SET_NULL when retention prunes
            # the original): resends only, so an ordinary delivery's insert does not touch it.
            models.Index(
                fields=["resend_of"],
                condition=models.Q(resend_of__isnull=False),
                name="delivery_resends",
            ),
        ]
        permissions = [("retry_delivery", "Can retry a delivery")]

    def __str__(self) -> str:
        return f"Delivery {self.uid}"

    @property
    def is_finished(self) -> bool:
        return self.state in FINISHED_STATES

    @property
    def sent_id(self) -> str:
        """The id every attempt sends (X-Postback-Id, {deliveryId}, the signature's id) for
        receivers to drop duplicates: a resend sends its original's."""
        return str(self.original_uid or self.uid)

    def waiting_for(self) -> "Delivery | None":
        """The earliest open delivery of an earlier status change (same postback and
        conversion) that must be final before this one is sent; None when it may go."""
        if self.is_finished or self.status_change_id is None:
            return None
        earlier = Delivery.objects.filter(
            postback_id=self.postback_id,
            conversion_id=self.conversion_id,
            status_change_id__lt=self.status_change_id,
            state__in=OPEN_STATES,
        )
        return earlier.order_by("status_change_id").first()


class DeliveryStat(models.Model):
    """Finished deliveries of one postback in one hour (by finished_at) whose last attempt took
    a duration in one latency bucket, for the dashboard. Written by postbacks/stats.py for hours
    that are over; test sends are left out. Bucket b holds durations in [1.1^b, 1.1^(b+1)) ms;
    no bucket: no duration recorded."""

    hour = models.DateTimeField()
    postback = models.ForeignKey(Postback, on_delete=models.CASCADE, related_name="+")
    bucket = models.SmallIntegerField(null=True, blank=True)
    delivered = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)

    class Meta:
        # Covers the dashboard's chart (totals per hour) without reading the table.
        indexes = [models.Index(fields=["hour", "delivered", "failed"])]

    def __str__(self) -> str:
        return f"{self.postback_id} at {self.hour:%Y-%m-%d %H}:00, bucket {self.bucket}"


class DeliveryWindowStat(models.Model):
    """DeliveryStat summed over each dashboard window (24 h, 7 d) ending at the hour the
    roll-up reached (StatsProgress.summary_until), per postback and latency bucket: what the
    dashboard reads instead of a week of hourly rows. Rewritten each time an hour is rolled up."""

    window = models.CharField(max_length=10)
    postback = models.ForeignKey(Postback, on_delete=models.CASCADE, related_name="+")
    bucket = models.SmallIntegerField(null=True, blank=True)
    delivered = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.postback_id} over {self.window}, bucket {self.bucket}"


class StatsProgress(models.Model):
    """The single row saying up to which hour DeliveryStat (and its window sums) is complete."""

    rolled_until = models.DateTimeField(null=True, blank=True)
    summary_until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Rolled up until {self.rolled_until}"


def current_worker() -> str:
    """Which node and process made an attempt: NODE_NAME (default: host name) and pid."""
    return _worker_name(settings.NODE_NAME, os.getpid())


@functools.cache
def _worker_name(node: str, pid: int) -> str:  # once per process: every attempt asks
    return f"{node or socket.gethostname()}:{pid}"[:100]


class DeliveryAttempt(models.Model):
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField(default=timezone.now)
    method = models.CharField(max_length=4, blank=True)
    url = models.TextField("URL", blank=True)
    request_headers = models.JSONField(default=dict, blank=True)
    request_body = models.TextField(blank=True)
    response_status = models.PositiveSmallIntegerField("HTTP status", null=True, blank=True)
    response_headers = models.JSONField(default=dict, blank=True)
    response_body = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField("duration (ms)", null=True, blank=True)
    error = models.TextField(blank=True)
    worker = models.CharField(max_length=100, blank=True, default=current_worker, editable=False)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["delivery", "-started_at"])]

    def __str__(self) -> str:
        return f"Attempt {self.number}"

    @property
    def succeeded(self) -> bool:
        return self.response_status is not None and 200 <= self.response_status < 300


class EndpointHealth(models.Model):
    """The failure streak of one endpoint (host:port), for the circuit breaker and auto-pause."""

    host = models.CharField("endpoint", max_length=300, unique=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    first_failure_at = models.DateTimeField(
        "failing since", null=True, blank=True, help_text="Start of the current failure streak."
    )
    last_failure_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    opened_at = models.DateTimeField(
        "backed off since",
        null=True,
        blank=True,
        help_text="When the breaker opened; a failed probe backs off for longer the longer ago.",
    )
    opened_until = models.DateTimeField(
        "backed off until",
        null=True,
        blank=True,
        help_text="Deliveries to this endpoint wait until then; empty: sending normally.",
    )
    probing = models.BooleanField(
        default=False,
        help_text="A probe is out (half-open): the wait above is for its outcome, not a back-off.",
    )

    class Meta:
        verbose_name = "endpoint health"
        verbose_name_plural = "endpoint health"
        ordering = ["-consecutive_failures", "host"]

    def __str__(self) -> str:
        return self.host


class AlertKind(models.TextChoices):
    PAUSED = "paused", "Postback paused"
    FAILING = "failing", "Endpoint keeps failing"


class Alert(models.Model):
    """Something a person should look at: a postback paused automatically or an endpoint that
    keeps failing (postbacks/alerts.py). E-mailed once, shown on the admin index until someone
    acknowledges it; at most one open alert per subject."""

    kind = models.CharField(max_length=10, choices=AlertKind.choices)
    subject = models.CharField(
        max_length=320, help_text="What the alert is about: postback:<id> or endpoint:<host:port>."
    )
    postback = models.ForeignKey(
        Postback, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    endpoint = models.CharField(max_length=300, blank=True)
    summary = models.TextField()
    last_error = models.TextField(blank=True)
    created = models.DateTimeField(default=timezone.now, db_index=True)
    mailed_at = models.DateTimeField("e-mailed", null=True, blank=True)
    mailed_to = models.TextField("e-mailed to", blank=True)
    mail_error = models.TextField("e-mail error", blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        ordering = ["-created"]
        constraints = [
            models.UniqueConstraint(
                fields=["subject"],
                condition=models.Q(acknowledged_at__isnull=True),
                name="alert_one_open_per_subject",
            )
        ]
        permissions = [("acknowledge_alert", "Can acknowledge an alert")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.postback or self.endpoint}"

    @property
    def is_open(self) -> bool:
        return self.acknowledged_at is None


class AuditSource(models.TextChoices):
    ADMIN = "admin", "Admin"
    API = "api", "API"
    PORTAL = "portal", "Affiliate portal"
    APPROVAL = "approval", "Approved change"
    ASSISTANT = "assistant", "Assistant"


class PostbackAudit(models.Model):
    """One change to a postback: who made it, when, from where, and what changed (field, old,
    new; secret-looking values masked). Written by postbacks/audit.py only."""

    postback = models.ForeignKey(Postback, on_delete=models.CASCADE, related_name="audit_log")
    at = models.DateTimeField(default=timezone.now)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    # The name at the time, kept when the user is deleted later.
    actor = models.CharField(max_length=150, blank=True)
    source = models.CharField(max_length=10, choices=AuditSource.choices)
    created = models.BooleanField(default=False, help_text="The postback was created.")
    changes = models.JSONField(default=list, blank=True)
    note = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["postback", "-at"])]
        verbose_name = "postback change"

    def __str__(self) -> str:
        return f"{self.postback_id} {self.at:%Y-%m-%d %H:%M} {self.actor}"
