"""CPU time by component, read from /proc: what a workflow costs the machine.

A component is a named way to find process ids (the client itself, a worker's
process tree, the Postgres backends connected to one database, the Redis
server). A ``Meter`` reads each component's processes' user + system time
before and after a phase; a process that appears during the phase counts from
zero. Wall-clock timings on a shared machine mostly measure the neighbours;
CPU time spent by our own processes does not, which is why this is the figure
the per-workflow costs are built on.

Postgres backends are found through ``pg_stat_activity`` by database name, so
another session's queries on the same server are not counted; the server's
shared processes (WAL writer, checkpointer) are left out for the same reason,
and ``machine`` (all of /proc/stat) shows how busy the rest of the box was.
The Redis server is one process shared with every other session: its figure is
an upper bound.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import sqlalchemy as sa

TICK = os.sysconf("SC_CLK_TCK")
PidSource = Callable[[], Iterable[int]]


def process_seconds(pid: int) -> float | None:
    """User + system CPU seconds of one process, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    # the command name (field 2) may hold spaces; fields after it are plain
    fields = raw.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def _cpu_line() -> list[int]:
    with open("/proc/stat") as f:
        return [int(v) for v in f.readline().split()[1:]]


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle (nor waiting on I/O) since boot, steal included."""
    values = _cpu_line()
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / TICK


def machine_steal_seconds() -> float:
    """CPU seconds the hypervisor ran someone else while this machine wanted to run.

    On a shared virtual machine this is how much slower a phase ran for reasons
    outside it: the same code measured 13.8 and 20.8 ms of CPU per workflow in
    two runs an hour apart here. Reported beside each phase so such a phase shows.
    """
    return _cpu_line()[7] / TICK


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                ppid = int(f.read().decode(errors="replace").rpartition(")")[2].split()[1])
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    return children


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants (a Celery worker and its pool children)."""
    children = _children_map()
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def pids_named(name: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as f:
                    if f.read().strip() == name:
                        found.append(int(entry))
            except (FileNotFoundError, ProcessLookupError):
                continue
    return found


def postgres_backends(admin: sa.Engine, db_name: str) -> PidSource:
    def pids() -> list[int]:
        with admin.connect() as c:
            rows = c.execute(
                sa.text("SELECT pid FROM pg_stat_activity WHERE datname = :n"), {"n": db_name}
            )
            return [int(r[0]) for r in rows]

    return pids


@dataclass
class Meter:
    """CPU seconds per component over one phase (``start()`` … ``stop()``)."""

    components: dict[str, PidSource]
    _before: dict[str, dict[int, float]] = field(default_factory=dict)
    _machine: float = 0.0
    _steal: float = 0.0

    def _read(self) -> dict[str, dict[int, float]]:
        snapshot = {}
        for name, source in self.components.items():
            times = {}
            for pid in set(source()):
                seconds = process_seconds(pid)
                if seconds is not None:
                    times[pid] = seconds
            snapshot[name] = times
        return snapshot

    def start(self) -> None:
        self._before = self._read()
        self._machine = machine_busy_seconds()
        self._steal = machine_steal_seconds()

    def stop(self) -> dict[str, float]:
        """CPU seconds per component, plus ``machine`` (every process on the box) and
        ``steal`` (time the host gave the machine's CPUs to others)."""
        after = self._read()
        machine = machine_busy_seconds() - self._machine
        steal = machine_steal_seconds() - self._steal
        spent = {
            name: sum(t - self._before.get(name, {}).get(pid, 0.0) for pid, t in times.items())
            for name, times in after.items()
        }
        spent["machine"] = machine
        spent["steal"] = steal
        return spent
