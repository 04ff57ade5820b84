from django.apps import AppConfig


class PostbacksConfig(AppConfig):
    name = "postbacks"
    verbose_name = "Affiliate postbacks"

    def ready(self):
        from postbacks import checks, signals  # noqa: F401  (registers checks, connects the receiver)
