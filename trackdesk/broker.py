"""The task brokers: django-q2's, each with one thing added.

PatientORM, the ORM broker (the default, without REDIS_URL), made to wait out a database outage.

django-q2's ORM broker reads the database when it is built, so a `qcluster` started (or restarted
by systemd) while the database is down exits at once; and during an outage its pusher dies and is
restarted every 10 s with a full traceback each time. This one builds without the database, and
its queue reads wait with back-off (1 s doubling to 30 s, one log line each) until the database
answers again; then the cluster carries on by itself.

WakingRedis, the Redis broker, with two things for the tasks that send whatever is due:
- as many pending as there are workers (`coalesced()`): while that many such tasks wait in the
  queue, another would only repeat their claims, so the message is not sent. A task, when it
  starts, says so (`task_started()`) before it claims, and one more is sent again. Workers held
  by slow receivers thus no longer return to a thousand queued tasks, each a claim for
  nothing, while a backlog queued at once still keeps every worker draining.
- a wake-up with every task (`wait_for_wake()`): a drain that took everything due but waits for
  a slow receiver's answer (postbacks.delivery.queue.Waker) sends the next conversion's
  postback at once, instead of at its next look.

Q_CLUSTER["broker_class"] names the one in use.
"""

import contextlib
import functools
import logging
import time

from django import db
from django_q.brokers.orm import ORM
from django_q.brokers.redis_broker import Redis
from django_q.conf import Conf
from django_q.models import OrmQ

log = logging.getLogger(__name__)

FIRST_WAIT = 1.0
# A cluster told to stop during an outage stops within this (TimeoutStopSec=90 in
# docs/operations.md).
MAX_WAIT = 30.0
DOWN = (db.OperationalError, db.InterfaceError)


class PatientORM(ORM):
    def __init__(self, list_key: str | None = None):
        # ORM.__init__ would open a connection here (get_connection); the queryset is lazy.
        self.list_key = list_key or Conf.CLUSTER_NAME
        self.connection = OrmQ.objects.using(Conf.ORM)
        self.cache = self.get_cache()
        self._info = None
        self._wait = 0.0

    def __setstate__(self, state):
        self.list_key, self._info = state
        self.connection = OrmQ.objects.using(Conf.ORM)
        self.cache = self.get_cache()
        self._wait = 0.0

    def dequeue(self):
        try:
            tasks = super().dequeue()
        except DOWN as exc:
            self._back_off(exc)
            return None
        if self._wait:
            log.warning("Database reachable again; the worker takes tasks.")
            self._wait = 0.0
        return tasks

    def delete(self, task_id):
        """Acknowledge (and fail) delete the task row. While the database is down the row stays:
        django-q2 hands the task out again after Q_CLUSTER["retry"], and the delivery's claim
        makes the second run send nothing."""
        try:
            super().delete(task_id)
        except DOWN as exc:
            log.warning("Could not acknowledge task %s, database unreachable (%s).", task_id, exc)

    def _back_off(self, exc) -> None:
        self._wait = min(self._wait * 2 or FIRST_WAIT, MAX_WAIT)
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        log.warning("Database unreachable (%s); next try in %.0f s.", first_line, self._wait)
        with contextlib.suppress(db.Error):
            db.connections[Conf.ORM].close()  # a fresh connection on the next try
        time.sleep(self._wait)


class WakingRedis(Redis):
    """django-q2's Redis broker; each task also leaves a wake-up (a list of at most one item),
    in the same round trip."""

    # Seconds the count of pending tasks lives from the first one sent: should they wait longer
    # in the queue (the workers are held) or be lost, more are sent again.
    PENDING_FOR = 1.0
    # Pending tasks that send whatever is due at most (None: Q_CLUSTER["workers"]).
    pending_tasks: int | None = None

    @property
    def wake_key(self) -> str:
        return f"{self.list_key}:wake"

    @property
    def pending_key(self) -> str:
        return f"{self.list_key}:pending"

    def enqueue(self, task):
        pipe = self.connection.pipeline(transaction=False)
        pipe.rpush(self.list_key, task)
        pipe.lpush(self.wake_key, 1)
        pipe.ltrim(self.wake_key, 0, 0)  # one wake-up is enough: the drain it wakes claims all due
        return pipe.execute()[0]

    def coalesced(self) -> "_Coalesced":
        """This broker for a task not sent while `pending_tasks` like it wait in the queue
        (async_task's `broker`); its enqueue returns 0 then."""
        return _Coalesced(self)

    def task_started(self) -> None:
        """A task given to coalesced() starts: one more may be sent. Call it before the task
        looks at the database: what was committed before a task was left unsent, it sees."""
        self._started_script(keys=[self.pending_key])

    def wait_for_wake(self, timeout: float) -> bool:
        """Take the wake-up, waiting up to `timeout` seconds for one; whether there was one."""
        return self.connection.blpop([self.wake_key], timeout) is not None

    @functools.cached_property
    def _enqueue_script(self):
        return self.connection.register_script(_ENQUEUE_COALESCED)

    @functools.cached_property
    def _started_script(self):
        return self.connection.register_script(_STARTED)


# KEYS: the queue, the count of pending tasks, the wake-up; ARGV: the task, the count's life
# (ms), the most pending. A task is left unsent only while that many sent ones have not started:
# the first of them to start claims what was committed before it was left unsent.
_ENQUEUE_COALESCED = """
redis.call('LPUSH', KEYS[3], 1)
redis.call('LTRIM', KEYS[3], 0, 0)
local pending = tonumber(redis.call('GET', KEYS[2]) or '0')
if pending >= tonumber(ARGV[3]) then
    return 0
end
if redis.call('INCR', KEYS[2]) == 1 then
    redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
return redis.call('RPUSH', KEYS[1], ARGV[1])
"""
# KEYS: the count of pending tasks. A count gone (expired) stays gone.
_STARTED = """
if redis.call('DECR', KEYS[1]) <= 0 then
    redis.call('DEL', KEYS[1])
end
"""


class _Coalesced:
    """What async_task uses of a broker (list_key, enqueue), sending only while fewer than
    `pending_tasks` are pending; one round trip (a script), as a plain enqueue."""

    def __init__(self, broker: WakingRedis):
        self.broker, self.list_key = broker, broker.list_key

    def enqueue(self, task) -> int:
        broker = self.broker
        most = broker.pending_tasks or Conf.WORKERS or 1
        keys = [broker.list_key, broker.pending_key, broker.wake_key]
        args = [task, int(broker.PENDING_FOR * 1000), most]
        return broker._enqueue_script(keys=keys, args=args)
