"""The task brokers: django-q2's, each with one thing added.

PatientORM, the ORM broker (the default, without REDIS_URL), made to wait out a database outage.

django-q2's ORM broker reads the database when it is built, so a `qcluster` started (or restarted
by systemd) while the database is down exits at once; and during an outage its pusher dies and is
restarted every 10 s with a full traceback each time. This one builds without the database, and
its queue reads wait with back-off (1 s doubling to 30 s, one log line each) until the database
answers again; then the cluster carries on by itself.

WakingRedis, the Redis broker, with two things for the tasks that send whatever is due:
- one pending at a time (`once()`): while such a task waits in the queue, another would only
  repeat its claim, so the message is not sent again. The task, when it starts, says so
  (`task_started()`) before it claims, and the next one is sent again. Workers held by slow
  receivers thus no longer return to a thousand queued tasks, each a claim for nothing.
- a wake-up with every task (`wait_for_wake()`): a drain that took everything due but waits for
  a slow receiver's answer (postbacks.delivery.queue.Waker) sends the next conversion's
  postback at once, instead of at its next look.

Q_CLUSTER["broker_class"] names the one in use.
"""

import contextlib
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

    # Seconds a pending task stands for the ones not sent after it. Should it wait longer in
    # the queue (the workers are held) or be lost, the next task is sent again.
    PENDING_FOR = 1.0

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

    def once(self) -> "_Once":
        """This broker for a task that is not sent while one like it is pending (async_task's
        `broker`); its enqueue returns 0 then."""
        return _Once(self)

    def task_started(self) -> None:
        """A task given to once() starts: the next one is sent again. Call it before the task
        looks at the database: whatever was committed before a task was left unsent, it sees."""
        self.connection.delete(self.pending_key)

    def wait_for_wake(self, timeout: float) -> bool:
        """Take the wake-up, waiting up to `timeout` seconds for one; whether there was one."""
        return self.connection.blpop([self.wake_key], timeout) is not None


# KEYS: the queue, the pending mark, the wake-up; ARGV: the task, the mark's life (ms).
_ENQUEUE_ONCE = """
redis.call('LPUSH', KEYS[3], 1)
redis.call('LTRIM', KEYS[3], 0, 0)
if redis.call('SET', KEYS[2], 1, 'NX', 'PX', ARGV[2]) then
    return redis.call('RPUSH', KEYS[1], ARGV[1])
end
return 0
"""


class _Once:
    """What async_task uses of a broker (list_key, enqueue), sending only if no task is pending;
    one round trip (a script), as a plain enqueue."""

    def __init__(self, broker: WakingRedis):
        self.broker, self.list_key = broker, broker.list_key

    def enqueue(self, task) -> int:
        broker = self.broker
        script = getattr(broker, "_enqueue_once", None)
        if script is None:
            script = broker._enqueue_once = broker.connection.register_script(_ENQUEUE_ONCE)
        keys = [broker.list_key, broker.pending_key, broker.wake_key]
        return script(keys=keys, args=[task, int(broker.PENDING_FOR * 1000)])
