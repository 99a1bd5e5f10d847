"""Benchmarks: the cost of durability, measured against plain Celery in the same run.

Each script (``python -m bench.<name> [--smoke]``) makes its own scratch
Postgres database and Redis database number, starts real ``celery worker``
subprocesses, prints a short table and, last, one JSON line.
"""
