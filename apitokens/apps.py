from django.apps import AppConfig


class ApiTokensConfig(AppConfig):
    name = "apitokens"
    verbose_name = "API access"

    def ready(self):
        from rest_framework.authtoken.models import TokenProxy

        # DRF's token prints as its key; the admin puts str(obj) in page titles, messages and
        # the "Recent actions" history. Name the owner instead, so the key is shown only once.
        TokenProxy.__str__ = lambda token: f"API token of {token.user}"
