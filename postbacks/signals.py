"""Receivers: conversion events become deliveries (same transaction), enqueued on commit; a
saved exchange rate sends the deliveries waiting for it; a saved or deleted postback updates
its affiliate's click field."""

from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from affiliates.models import Affiliate
from conversions.models import ExchangeRate
from conversions.signals import conversion_event, conversion_events
from postbacks import matching, money
from postbacks.assistant.clickfield import remember_click_field
from postbacks.delivery import queue
from postbacks.models import Postback


@receiver(conversion_event, dispatch_uid="postbacks.on_conversion_event")
def on_conversion_event(sender, conversion, status_change, **kwargs):
    queue.enqueue_on_commit(matching.create_deliveries(conversion, status_change), marked=True)


@receiver(conversion_events, dispatch_uid="postbacks.on_conversion_events")
def on_conversion_events(sender, events, **kwargs):
    queue.enqueue_on_commit(matching.create_deliveries_bulk(events), marked=True)


@receiver(post_save, sender=ExchangeRate, dispatch_uid="postbacks.on_exchange_rate_saved")
def on_exchange_rate_saved(sender, instance, raw=False, **kwargs):
    if not raw:  # loaddata: fixtures, not a rate someone is waiting for
        money.release_waiting(instance.base, instance.quote)


# One place keeps Affiliate.click_field current, whatever saves the postback (admin, API,
# assistant, shell): the affiliate it belongs to now, and the one it was moved away from.
@receiver(pre_save, sender=Postback, dispatch_uid="postbacks.on_postback_saving")
def on_postback_saving(sender, instance, raw=False, **kwargs):
    if not raw and instance.pk:
        previous = Postback.objects.filter(pk=instance.pk).values_list("affiliate_id", flat=True)
        instance.affiliate_before_save = previous.first()


@receiver(post_save, sender=Postback, dispatch_uid="postbacks.on_postback_saved")
def on_postback_saved(sender, instance, raw=False, **kwargs):
    if raw:
        return
    remember_click_field(instance.affiliate)
    before = getattr(instance, "affiliate_before_save", None)
    if before not in (None, instance.affiliate_id):
        remember_click_field(Affiliate.objects.get(pk=before))


@receiver(post_delete, sender=Postback, dispatch_uid="postbacks.on_postback_deleted")
def on_postback_deleted(sender, instance, **kwargs):
    affiliate = Affiliate.objects.filter(pk=instance.affiliate_id).first()
    if affiliate is not None:
        remember_click_field(affiliate)
