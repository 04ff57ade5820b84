from django.apps import AppConfig


class PortalConfig(AppConfig):
    """The affiliates' own pages under /portal/: built on the postbacks code, never a copy."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "portal"
