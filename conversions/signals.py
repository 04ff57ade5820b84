"""The hook other apps use to act on conversion events."""

from django.dispatch import Signal

# Sent inside the transaction that creates a conversion in, or moves it to, a status.
# Arguments: conversion, status, status_change (the ConversionStatusChange row written for it:
# each change is announced once, so it is the event's identity), source.
# Receivers must only write rows in that transaction and leave any outside work to
# transaction.on_commit.
conversion_event = Signal()

# The same for many new conversions at once (bulk ingest), sent once inside their transaction.
# Arguments: events (a list of (conversion, status_change)), source. A receiver of conversion_event
# must receive this one too: the bulk path sends only this.
conversion_events = Signal()
