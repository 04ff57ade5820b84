from django.apps import AppConfig


class PostbacksConfig(AppConfig):
    name = "postbacks"
    verbose_name = "Affiliate postbacks"

    def ready(self):
        from . import checks, signals  # noqa: F401  (registers checks, connects the receiver)
