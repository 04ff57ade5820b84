"""Receivers: conversion events become deliveries (same transaction), enqueued on commit; a
saved exchange rate sends the deliveries waiting for it."""

from django.db.models.signals import post_save
from django.dispatch import receiver

from conversions.models import ExchangeRate
from conversions.signals import conversion_event, conversion_events
from postbacks import matching, money
from postbacks.delivery import queue


@receiver(conversion_event, dispatch_uid="postbacks.on_conversion_event")
def on_conversion_event(sender, conversion, status_change, **kwargs):
    deliveries = matching.create_deliveries(conversion, status_change)
    queue.enqueue_on_commit([d.pk for d in deliveries], marked=True)


@receiver(conversion_events, dispatch_uid="postbacks.on_conversion_events")
def on_conversion_events(sender, events, **kwargs):
    deliveries = matching.create_deliveries_bulk(events)
    queue.enqueue_on_commit([d.pk for d in deliveries], marked=True)


@receiver(post_save, sender=ExchangeRate, dispatch_uid="postbacks.on_exchange_rate_saved")
def on_exchange_rate_saved(sender, instance, raw=False, **kwargs):
    if not raw:  # loaddata: fixtures, not a rate someone is waiting for
        money.release_waiting(instance.base, instance.quote)
