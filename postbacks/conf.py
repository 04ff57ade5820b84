"""Every POSTBACK_* setting in one place: name, type, default and meaning, and how code reads it.

Code reads a setting by calling it, e.g. `conf.claim_seconds()`. The value comes from
django.conf.settings at that moment, so override_settings and pytest's `settings` fixture apply.

Only trackdesk/settings.py reads the environment. It sets each POSTBACK_* setting from its
variable, with the default declared here written out again: settings load before any app, and
trackdesk sits below postbacks, so it cannot import this module. tests/test_conf.py checks that
both give the same defaults and that every POSTBACK_* setting in settings.py is declared here.
A settings module without one of these names gets the default below.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from django.conf import settings

T = TypeVar("T")


@dataclass(frozen=True)
class Setting(Generic[T]):
    name: str
    default: T
    meaning: str

    def __call__(self) -> T:
        return getattr(settings, self.name, self.default)


# --- where the sender may connect (postbacks/transport/netguard.py) ---------------------------
allowed_networks: Setting[Sequence[str]] = Setting(
    "POSTBACK_ALLOWED_NETWORKS",
    (),
    "Networks (CIDRs) the sender may reach although they are not public; empty: public only.",
)
allowed_ports: Setting[Sequence[int]] = Setting(
    "POSTBACK_ALLOWED_PORTS",
    (80, 443),
    "Ports allowed on public addresses (allowed networks may use any port).",
)

# --- one request (postbacks/transport/) ---------------------------------------------------------
ca_bundle = Setting(
    "POSTBACK_CA_BUNDLE",
    "",
    "A PEM file of CAs that replaces the default trust store for HTTPS postbacks; empty: default.",
)
connect_timeout = Setting("POSTBACK_CONNECT_TIMEOUT", 3.0, "Seconds to wait for a connection.")
read_timeout = Setting(
    "POSTBACK_READ_TIMEOUT", 10.0, "Seconds to wait for the receiver's next bytes."
)
total_timeout = Setting(
    "POSTBACK_TOTAL_TIMEOUT",
    15.0,
    "Seconds for the whole exchange, redirect hops included, so a server that drips its answer "
    "cannot hold a worker.",
)
follow_redirects = Setting(
    "POSTBACK_FOLLOW_REDIRECTS",
    False,
    "Off: a 3xx is logged as the answer and counts as a failure. On: up to max_redirects hops "
    "are followed, each checked by the address guard like the first request.",
)
max_redirects = Setting("POSTBACK_MAX_REDIRECTS", 3, "Redirect hops followed at most.")
response_body_limit = Setting(
    "POSTBACK_RESPONSE_BODY_LIMIT", 4096, "Bytes of a response body read and stored at most."
)

# --- retries, claims and the sweeper (postbacks/delivery/) ------------------------------------
retry_schedule: Setting[Sequence[int]] = Setting(
    "POSTBACK_RETRY_SCHEDULE",
    (60, 300, 1800, 7200, 21600, 43200, 86400),
    "Seconds to wait before each retry; the default is Trackdesk's 7 retries over about 2 days.",
)
stale_after = Setting(
    "POSTBACK_STALE_AFTER",
    120,
    "Seconds after which the sweeper enqueues again a due delivery no worker picked up.",
)
claim_seconds = Setting(
    "POSTBACK_CLAIM_SECONDS",
    60,
    "Seconds a worker owns a delivery it claimed; keep it above total_timeout.",
)

# --- endpoint isolation (postbacks/delivery/breaker.py) ---------------------------------------
breaker_threshold = Setting(
    "POSTBACK_BREAKER_THRESHOLD",
    5,
    "Consecutive failures after which an endpoint (host:port) is backed off; 0: never.",
)
breaker_cooldown = Setting(
    "POSTBACK_BREAKER_COOLDOWN",
    30,
    "Seconds a backed-off endpoint first waits; after a failed probe, a quarter of the time it "
    "has been backed off if that is longer.",
)
breaker_max_cooldown = Setting(
    "POSTBACK_BREAKER_MAX_COOLDOWN", 1800, "The longest back-off, in seconds."
)
auto_pause_after = Setting(
    "POSTBACK_AUTO_PAUSE_AFTER",
    0.0,
    "Days after which the postbacks of an endpoint that failed every attempt are paused; 0: never.",
)

# --- alerts (postbacks/alerts.py) --------------------------------------------------------------
alert_failures = Setting(
    "POSTBACK_ALERT_FAILURES",
    10,
    "Failed attempts in a row to one endpoint (host:port) that raise a 'keeps failing' alert "
    "for it (e-mail and admin banner); 0: no such alerts (auto-pause alerts still come).",
)
alert_window_hours = Setting(
    "POSTBACK_ALERT_WINDOW_HOURS",
    72,
    "Hours after which an endpoint that is still failing is alerted again, once the earlier "
    "alert has been acknowledged.",
)

# --- the log -----------------------------------------------------------------------------------
mask_secrets = Setting(
    "POSTBACK_MASK_SECRETS",
    True,
    "Show secret-looking parameter values (token=, key=, sig=...) as ******** in the admin log "
    "and the deliveries API; the stored rows keep what was sent.",
)
log_retention_days = Setting(
    "POSTBACK_LOG_RETENTION_DAYS",
    90,
    "Days after which finished deliveries and their attempts are pruned daily; 0: kept forever.",
)

# --- concurrent dispatch (postbacks/delivery/batch.py) ----------------------------------------
concurrent_dispatch = Setting(
    "POSTBACK_CONCURRENT_DISPATCH",
    True,
    "On: a task claims due deliveries in batches and sends many at once. Off: one request per "
    "task (postbacks/delivery/single.py). Both keep the same guarantees.",
)
concurrency = Setting(
    "POSTBACK_CONCURRENCY", 1000, "Requests in flight per worker process at most."
)
per_host_concurrency = Setting(
    "POSTBACK_PER_HOST_CONCURRENCY",
    200,
    "Requests in flight per endpoint (host:port) and worker process at most.",
)
batch_size = Setting("POSTBACK_BATCH_SIZE", 250, "Deliveries claimed at once at most.")
drain_seconds = Setting(
    "POSTBACK_DRAIN_SECONDS",
    20.0,
    "Seconds after which a task stops claiming and hands the rest over to another task; keep "
    "it plus total_timeout below Q_CLUSTER's timeout.",
)

ALL: tuple[Setting, ...] = tuple(v for v in list(globals().values()) if isinstance(v, Setting))
