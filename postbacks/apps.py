from django.apps import AppConfig


class PostbacksConfig(AppConfig):
    name = "postbacks"
    verbose_name = "Affiliate postbacks"

    def ready(self):
        # Registers the checks and the scrape-time gauges (metrics), connects the receivers
        # (signals; alerts hears auto-pause).
        from postbacks import alerts, checks, metrics, signals  # noqa: F401

        # The concurrent sender (aiohttp, TLS contexts: a third of a second) is loaded here, so
        # qcluster's workers inherit it when forked instead of each loading it on first drain.
        from postbacks.transport import aiohttp_sender  # noqa: F401
