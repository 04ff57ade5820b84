from django.apps import AppConfig


class PostbacksConfig(AppConfig):
    name = "postbacks"
    verbose_name = "Affiliate postbacks"

    def ready(self):
        # Registers the checks and the scrape-time gauges (metrics), connects the receivers
        # (signals; alerts hears auto-pause).
        from postbacks import alerts, checks, metrics, signals  # noqa: F401
