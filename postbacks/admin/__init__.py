"""The postbacks admin: model admins (configuration, the log, the conversion page's deliveries)
and the pages they link to (preview, test send, walkthrough, dashboard).

Django's autodiscover imports this package; importing the modules registers their admins.
"""

from postbacks.admin import alerts, conversion, log, postback  # noqa: F401
