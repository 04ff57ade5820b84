"""Resend: a finished delivery (delivered or failed) sent again as a new, logged delivery.

The new delivery announces the same status change to the same postback and sends the
original's id (X-Postback-Id, {deliveryId}, the signature's id), so a receiver that has the
first one can drop it. Test sends are not resent: a new test send does that job.
"""

from django.db import transaction
from django.utils import timezone

from postbacks.delivery import queue
from postbacks.models import Delivery, DeliveryState


class CannotResend(Exception):
    """Why the delivery cannot be resent, as a message for the person who asked."""


def resend_refusal(delivery: Delivery) -> str:
    """Why `delivery` cannot be resent now ("" when it can)."""
    if delivery.is_test:
        return "A test send is not resent: send a new test from the postback's page."
    if not delivery.is_finished:
        return "This delivery is still being tried: use Retry now to try it at once."
    if not delivery.postback.active:
        return "The postback is inactive: activate it first, then resend."
    if Delivery.objects.open().filter(resend_of=delivery.resend_of_id or delivery.pk).exists():
        return "A resend of this delivery is on its way already: see the log below."
    return ""


def resend(delivery: Delivery) -> Delivery:
    """A new delivery of the same postback and status change, queued on commit; raises
    CannotResend with the reason when resend_refusal says no."""
    with transaction.atomic():
        # Locked, so two clicks at once make one resend.
        delivery = Delivery.objects.select_for_update().get(pk=delivery.pk)
        refusal = resend_refusal(delivery)
        if refusal:
            raise CannotResend(refusal)
        now = timezone.now()
        copy = Delivery.objects.create(
            postback_id=delivery.postback_id,
            conversion_id=delivery.conversion_id,
            status=delivery.status,
            status_change_id=delivery.status_change_id,
            resend_of_id=delivery.resend_of_id or delivery.pk,
            original_uid=delivery.original_uid or delivery.uid,
            state=DeliveryState.PENDING,
            created=now,
            next_attempt_at=now,
            enqueued_at=now,
        )
        queue.enqueue_on_commit([copy.pk], marked=True)
    return copy
