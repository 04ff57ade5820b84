"""The delivery engine: turns Delivery rows into HTTP attempts and their log.

queue.py enqueues (after commit, on retry, from the sweeper); single.py claims one delivery and
makes one attempt (build, apply the result, retry delay); batch.py claims and sends many at once;
breaker.py backs off failing endpoints and pauses dead ones; retention.py prunes the old log;
testsend.py sends a postback now for a chosen event; tasks.py holds the django-q2 entry points.
"""
