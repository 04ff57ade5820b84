"""postbacks/conf.py declares each POSTBACK_* setting once; trackdesk/settings.py agrees."""

import os
import runpy
from collections.abc import Sequence
from pathlib import Path

import environ

from postbacks import conf

SETTINGS_FILE = Path(__file__).resolve().parent.parent / "trackdesk" / "settings.py"


def settings_without_environment(monkeypatch) -> dict:
    """trackdesk/settings.py as it reads with no POSTBACK_* variable set (nor a .env file)."""
    for name in [name for name in os.environ if name.startswith("POSTBACK_")]:
        monkeypatch.delenv(name)
    monkeypatch.setattr(environ.Env, "read_env", classmethod(lambda cls, *args, **kwargs: None))
    return runpy.run_path(str(SETTINGS_FILE))


def plain(value):
    return list(value) if isinstance(value, Sequence) and not isinstance(value, str) else value


def test_every_setting_is_declared_once_with_the_default_settings_py_uses(monkeypatch):
    module = settings_without_environment(monkeypatch)
    in_settings = {name: value for name, value in module.items() if name.startswith("POSTBACK_")}
    declared = {setting.name: plain(setting.default) for setting in conf.ALL}
    assert len(declared) == len(conf.ALL)
    assert in_settings == declared


def test_a_setting_is_read_when_called(settings):
    settings.POSTBACK_CLAIM_SECONDS = 7
    assert conf.claim_seconds() == 7
    settings.POSTBACK_CLAIM_SECONDS = 8
    assert conf.claim_seconds() == 8


def test_a_settings_module_without_the_name_gets_the_default(settings):
    del settings.POSTBACK_RETRY_SCHEDULE
    assert conf.retry_schedule() == (60, 300, 1800, 7200, 21600, 43200, 86400)


def test_alert_mail_goes_to_the_console_while_debug_else_to_the_email_url(monkeypatch):
    monkeypatch.delenv("EMAIL_URL", raising=False)
    monkeypatch.setenv("DEBUG", "True")
    backend = settings_without_environment(monkeypatch)["EMAIL_BACKEND"]
    assert backend.endswith("console.EmailBackend")
    monkeypatch.setenv("DEBUG", "False")
    monkeypatch.setenv("EMAIL_URL", "smtp+tls://alerts:pw@smtp.example.com:587")
    module = settings_without_environment(monkeypatch)
    assert module["EMAIL_BACKEND"].endswith("smtp.EmailBackend")
    assert (module["EMAIL_HOST"], module["EMAIL_PORT"], module["EMAIL_USE_TLS"]) == (
        "smtp.example.com",
        587,
        True,
    )
    assert module["EMAIL_TIMEOUT"] == 10


def test_workers_are_replaced_for_memory_not_every_few_hundred_tasks():
    """django-q2's default replaces each worker after 500 tasks; both workers reached it
    together every 10 s at 100 conversions/s, and none ran until the guard's next round."""
    from django_q.conf import Conf

    assert Conf.RECYCLE >= 10_000
    assert Conf.MAX_RSS and Conf.MAX_RSS >= 256 * 1024  # kB: a leak still ends a worker
