"""The ORM broker (the default, without REDIS_URL), made to wait out a database outage.

django-q2's ORM broker reads the database when it is built, so a `qcluster` started (or restarted
by systemd) while the database is down exits at once; and during an outage its pusher dies and is
restarted every 10 s with a full traceback each time. This one builds without the database, and
its queue reads wait with back-off (1 s doubling to 30 s, one log line each) until the database
answers again; then the cluster carries on by itself. Q_CLUSTER["broker_class"] names it.
"""

import contextlib
import logging
import time

from django import db
from django_q.brokers.orm import ORM
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
