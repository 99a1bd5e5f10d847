"""``WorkflowManager``: the one owner of run state.

Starting, inspecting, retrying and cancelling runs, the step protocol's
transitions (through ``transitions`` and ``protocol``), the retry policy, and
recovery. Every status change is a conditional UPDATE; nothing here reads a
status, decides, and writes it back.

Every status write goes through ``transitions`` (one conditional statement
each, the run row locked before its steps). Messages are sent through an
injected ``dispatch(run_id, workflow, step_names)`` callable, always *after*
the transaction that made those steps ready commits; the recovery sweep covers
a send that never happened.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn

import marshmallow
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection, Engine

from app.engine import transitions
from app.engine.definition import StepDefinition, Workflow
from app.engine.errors import (
    IdempotencyConflict,
    IllegalTransition,
    InvalidInput,
    NothingToRetry,
    RunCompensated,
    RunFinished,
    RunNotFound,
    UnknownSignal,
    structured_error,
)
from app.engine.graph import ancestors
from app.engine.models import runs, steps
from app.engine.outbox import Outbox
from app.engine.queries import RunFilter
from app.engine.recovery import RecoveryMixin, RecoveryReport
from app.engine.registry import Registry
from app.engine.retry import RetryPolicy
from app.engine.serialize import find_nul, request_hash
from app.engine.start_sql import record_run
from app.engine.states import RunStatus, StepKind, StepStatus

if TYPE_CHECKING:
    from app.engine.batch import BatchItem

log = logging.getLogger(__name__)

__all__ = ["RecoveryReport", "StartResult", "WorkflowManager", "structured_error"]

# dispatch(run id, workflow, step names, parent): ``parent`` is the (task id,
# root id) of the task that made the steps ready, or None
Dispatch = Callable[..., None]
RunDict = dict[str, Any]

MAX_PAGE = 500

RUN_COLUMNS = (
    runs.c.id,
    runs.c.name,
    runs.c.status,
    runs.c.input,
    runs.c.output,
    runs.c.error,
    runs.c.idempotency_key,
    runs.c.recovery_count,
    runs.c.forked_from,
    runs.c.definition_version,
    runs.c.created_at,
    runs.c.updated_at,
    runs.c.started_at,
    runs.c.finished_at,
)
STEP_COLUMNS = (
    steps.c.name,
    steps.c.position,
    steps.c.status,
    steps.c.attempts,
    steps.c.output,
    steps.c.error,
    steps.c.started_at,
    steps.c.finished_at,
    steps.c.next_attempt_at,
    steps.c.after,
    steps.c.kind,
    steps.c.signal,
    steps.c.wake_at,
    steps.c.waiting_for,
    steps.c.history,
)


@dataclass(frozen=True)
class StartResult:
    run: RunDict
    created: bool


def encode_cursor(created_at: datetime, run_id: uuid.UUID) -> str:
    raw = f"{created_at.isoformat()}|{run_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, _, run_id = base64.urlsafe_b64decode(padded).decode().partition("|")
        return datetime.fromisoformat(created), uuid.UUID(run_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput(
            "cursor is not valid", details={"cursor": ["not a cursor returned by this API"]}
        ) from None


class WorkflowManager(RecoveryMixin):
    def __init__(
        self,
        engine: Engine,
        registry: Registry,
        *,
        default_policy: RetryPolicy | None = None,
        default_step_timeout: float = 60.0,
        recovery_grace: float = 30.0,
        recovery_limit: int = 3,
        max_countdown: float = 900.0,
        worker_ttl: float = 30.0,
        dispatch: Dispatch | None = None,
    ) -> None:
        self.engine = engine
        self.registry = registry
        self.default_policy = default_policy or RetryPolicy()
        self.default_step_timeout = default_step_timeout
        self.recovery_grace = recovery_grace
        self.recovery_limit = recovery_limit
        # longest delay a broker countdown may carry (longer ones wait in Postgres)
        self.max_countdown = max_countdown
        # a worker not seen for this long is not counted as having its steps
        self.worker_ttl = worker_ttl
        self._dispatch = dispatch
        # a new run's first messages: sent after its commit, off the caller's thread
        self.outbox = Outbox(self.send)

    # -- wiring ------------------------------------------------------------

    def set_dispatch(self, dispatch: Dispatch) -> None:
        self._dispatch = dispatch

    def send(
        self, run_id: uuid.UUID, workflow: str, step_names: Sequence[str],
        parent: tuple[str, str] | None = None,
    ) -> bool:
        """Send these steps of the run; a failed send is left to the sweep.

        ``parent``: the (task id, root id) of the step task that made them ready.
        """
        if not step_names:
            return True
        if self._dispatch is None:
            log.warning("no dispatcher configured; run %s waits for the recovery sweep", run_id)
            return False
        try:
            if parent is None:
                self._dispatch(run_id, workflow, list(step_names))
            else:
                self._dispatch(run_id, workflow, list(step_names), parent)
        except Exception:  # broker down: the run is recorded, the sweep will send it
            log.exception("could not send run %s; the recovery sweep will retry", run_id)
            return False
        return True

    def flush_sends(self, timeout: float = 5.0) -> bool:
        """Wait until the chains of the runs started so far are published."""
        return self.outbox.flush(timeout)

    # -- definitions ---------------------------------------------------------

    def workflow(self, name: str) -> Workflow:
        return self.registry.get(name)

    def policy_for(self, workflow: Workflow, step: StepDefinition) -> RetryPolicy:
        return workflow.policy_for(step, self.default_policy)

    def timeout_for(self, workflow: Workflow, step: StepDefinition) -> float:
        return workflow.timeout_for(step, self.default_step_timeout)

    # -- runs ----------------------------------------------------------------

    def validate_input(self, workflow: Workflow, payload: Any) -> dict[str, Any]:
        """Validate against the workflow's schema; return the JSON form that is stored."""
        if not isinstance(payload, Mapping):
            raise InvalidInput(
                "input must be a JSON object", details={"input": ["Must be an object."]}
            )
        try:
            loaded = workflow.input_schema.load(payload)
        except marshmallow.ValidationError as exc:
            raise InvalidInput(
                f"input does not match the {workflow.name!r} schema",
                details={"input": exc.normalized_messages()},  # type: ignore[no-untyped-call]
            ) from None
        dumped: dict[str, Any] = workflow.input_schema.dump(loaded)
        nul = find_nul(dumped, "input")
        if nul is not None:
            raise InvalidInput(
                "input holds a NUL character (\\u0000), which cannot be stored",
                details={"input": [f"{nul}: NUL characters are not allowed"]},
            )
        return dumped

    def start(
        self,
        name: str,
        payload: Any,
        idempotency_key: str | None = None,
        *,
        conn: Connection | None = None,
    ) -> StartResult:
        """Record a run and its steps in one statement, then have its chain sent.

        Returns once the run is durable; the chain is published right after by
        this process's sender thread (``app.engine.outbox``), or by the
        recovery sweep if this process dies first. ``flush_sends`` waits for it.

        With an idempotency key, the unique (key, name) constraint decides the
        race: the loser reads the winner's run. Same body → same run; another
        body → ``IdempotencyConflict``. With ``conn``, the caller owns the
        transaction and must call ``send`` after it commits.
        """
        workflow = self.registry.get(name)
        data = self.validate_input(workflow, payload)
        digest = request_hash(data) if idempotency_key is not None else None
        run_id = uuid.uuid4()
        if conn is not None:
            created = self._record_in(conn, run_id, workflow, data, idempotency_key, digest)
        else:
            created = self._record_alone(run_id, workflow, data, idempotency_key, digest)
        if created is None:
            existing = self._find_by_key(name, idempotency_key, conn)
            if existing["request_hash"] != digest:
                raise IdempotencyConflict(
                    "this Idempotency-Key was already used with a different request body",
                    details={"idempotency_key": idempotency_key, "run_id": str(existing["id"])},
                )
            return StartResult(self.get(existing["id"], conn=conn), created=False)
        if conn is None:
            self.outbox.put(run_id, name, root_names(workflow))
        # what was just written, without reading it back: the API's hot path
        run: RunDict = {
            "id": run_id,
            "name": name,
            "status": RunStatus.PENDING.value,
            "input": data,
            "output": None,
            "error": None,
            "idempotency_key": idempotency_key,
            "recovery_count": 0,
            "created_at": created,
            "updated_at": created,
            "started_at": None,
            "finished_at": None,
            "forked_from": None,
            "definition_version": getattr(workflow, "version", None),
            "steps": [
                {
                    "name": step.name,
                    "position": step.position,
                    "status": StepStatus.PENDING.value,
                    "attempts": 0,
                    "output": None,
                    "error": None,
                    "started_at": None,
                    "finished_at": None,
                    "next_attempt_at": None,
                    "after": list(step.after),
                    "kind": step.kind.value,
                    "signal": step.signal,
                    "wake_at": None,
                    "waiting_for": None,
                    "history": [],
                }
                for step in workflow.steps
            ],
        }
        return StartResult(run, created=True)

    def _record_in(
        self, conn: Connection, run_id: uuid.UUID, workflow: Workflow, data: Any,
        key: str | None, digest: str | None,
    ) -> datetime | None:
        """The run and its steps inside the caller's transaction (it sends after commit)."""
        insert = (
            pg_insert(runs)
            .values(
                id=run_id,
                name=workflow.name,
                status=RunStatus.PENDING.value,
                input=data,
                idempotency_key=key,
                request_hash=digest,
                # a stored (designed) workflow's version: the run keeps it for good
                definition_version=getattr(workflow, "version", None),
                created_at=sa.func.now(),
                updated_at=sa.func.now(),
            )
            .on_conflict_do_nothing(index_elements=["idempotency_key", "name"])
            .returning(runs.c.created_at)
        )
        created_at: datetime | None = conn.execute(insert).scalar_one_or_none()
        if created_at is not None:
            conn.execute(steps.insert().values(
                [row | {"run_id": run_id} for row in step_rows_of(workflow)]
            ))
        return created_at

    def _record_alone(
        self, run_id: uuid.UUID, workflow: Workflow, data: Any, key: str | None,
        digest: str | None,
    ) -> datetime | None:
        """The run and its steps in one autocommit statement (one round trip)."""
        with self.engine.connect() as c:
            dbapi = c.connection.dbapi_connection
            assert dbapi is not None
            dbapi.autocommit = True  # as the step protocol does: no BEGIN, no COMMIT
            try:
                created = record_run(c, run_id=run_id, workflow=workflow, data=data,
                                     idempotency_key=key, digest=digest)
                c.commit()  # ends SQLAlchemy's autobegun transaction; nothing is sent
            finally:
                if not dbapi.closed:
                    dbapi.autocommit = False
        return created

    def start_many(
        self, name: str, items: Sequence[BatchItem | Mapping[str, Any]]
    ) -> builtins.list[StartResult]:
        """Start up to ``BATCH_MAX`` runs of one workflow in one transaction (``app.engine.batch``).

        ``items`` are ``BatchItem(input, idempotency_key=None)`` or mappings
        ``{"input": ..., "idempotency_key": ...}``. Every item is validated first:
        any bad item (each named by index) → ``InvalidInput`` and nothing is
        written; so does a key used twice in the batch. Keys behave as in
        ``start``: same key and body → the existing run (``created=False``),
        another body → ``IdempotencyConflict`` and nothing is written. Returns
        one ``StartResult`` per item, in order; new runs are sent after commit.
        """
        from app.engine.batch import start_many

        return start_many(self, name, items)

    def _find_by_key(
        self, name: str, key: str | None, conn: Connection | None
    ) -> Mapping[str, Any]:
        query = sa.select(runs.c.id, runs.c.request_hash).where(
            runs.c.idempotency_key == key, runs.c.name == name
        )
        if conn is not None:
            return dict(conn.execute(query).mappings().one())
        with self.engine.connect() as c:
            return dict(c.execute(query).mappings().one())

    def get(self, run_id: uuid.UUID | str, *, conn: Connection | None = None) -> RunDict:
        rid = _as_uuid(run_id)
        if conn is None:
            with self.engine.connect() as c:
                return self._get(c, rid)
        return self._get(conn, rid)

    def _get(self, conn: Connection, run_id: uuid.UUID) -> RunDict:
        row = conn.execute(sa.select(*RUN_COLUMNS).where(runs.c.id == run_id)).mappings().first()
        if row is None:
            raise RunNotFound(f"no run with id {run_id}")
        run = dict(row)
        run["steps"] = [
            dict(s)
            for s in conn.execute(
                sa.select(*STEP_COLUMNS).where(steps.c.run_id == run_id).order_by(steps.c.position)
            ).mappings()
        ]
        return run

    def list(
        self,
        *,
        status: str | None = None,
        name: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        filters: RunFilter | None = None,
    ) -> tuple[list[RunDict], str | None]:
        """Newest first, keyset-paginated on (created_at, id): no OFFSET scans.

        ``filters`` (``app.engine.queries``) takes the place of ``status`` and
        ``name`` when given.
        """
        limit = max(1, min(limit, MAX_PAGE))
        query = sa.select(*RUN_COLUMNS).order_by(runs.c.created_at.desc(), runs.c.id.desc())
        query = (filters or RunFilter(status=status, name=name)).apply(query)
        if cursor:
            created_at, last_id = decode_cursor(cursor)
            query = query.where(sa.tuple_(runs.c.created_at, runs.c.id) < (created_at, last_id))
        with self.engine.connect() as c:
            rows = [dict(r) for r in c.execute(query.limit(limit + 1)).mappings()]
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_cursor = encode_cursor(rows[-1]["created_at"], rows[-1]["id"])
        return rows, next_cursor

    def retry(self, run_id: uuid.UUID | str) -> RunDict:
        """failed/cancelled → pending, resuming where the run stopped.

        Succeeded steps keep their output and are never re-run; failed and
        retrying steps get a fresh attempt budget; the steps whose predecessors
        are all done are sent. A step still running (a cancelled run's last
        step) keeps its lease and finishes on its own; its checkpoint then
        carries the run on. A run with every step done has nothing to resume
        (409 ``nothing_to_retry``); a compensated run neither (409).
        """
        rid = _as_uuid(run_id)
        with self.engine.begin() as c:
            outcome = transitions.retry(c, rid)
            if outcome.name is None:
                status = c.execute(sa.select(runs.c.status).where(runs.c.id == rid)).scalar()
                if status is None:
                    raise RunNotFound(f"no run with id {rid}")
                if status in ("failed", "cancelled") and outcome.compensated_steps:
                    raise RunCompensated(
                        "the run's steps were compensated (undone); start a new run or fork it",
                        details={"status": status, "action": "retry"},
                    )
                if status in ("failed", "cancelled") and not outcome.open_steps:
                    raise NothingToRetry(
                        f"every step of this {status} run already finished; there is nothing "
                        "to retry",
                        details={"status": status, "action": "retry"},
                    )
                raise IllegalTransition(
                    f"cannot retry a run that is {status}",
                    details={"status": status, "action": "retry"},
                )
            ready = transitions.dispatch_ready(c, rid)
        self.send(rid, outcome.name, ready)
        return self.get(rid)

    def cancel(self, run_id: uuid.UUID | str) -> RunDict:
        """pending/running → cancelled. A running step may finish; no later step starts."""
        rid = _as_uuid(run_id)
        with self.engine.begin() as c:
            if transitions.cancel(c, rid) is None:
                self._raise_transition(c, rid, "cancel")
        return self.get(rid)

    def signal(
        self, run_id: uuid.UUID | str, signal: str, payload: Any = None,
        idempotency_key: str | None = None,
    ) -> RunDict:
        """Deliver ``signal`` to a run: stored until a step waiting for it consumes it.

        Kept when no step waits yet (no lost-signal race); a delivery repeated
        with the same idempotency key is stored once.
        """
        rid = _as_uuid(run_id)
        with self.engine.connect() as c:
            found = c.execute(
                sa.select(runs.c.name, runs.c.definition_version).where(runs.c.id == rid)
            ).first()
        if found is None:
            raise RunNotFound(f"no run with id {rid}")
        name = str(found.name)
        workflow = self.registry.find(name, found.definition_version)
        declared = workflow.signals if workflow is not None else ()
        if signal not in declared:
            raise UnknownSignal(
                f"workflow {name!r} declares no signal {signal!r}",
                details={"signal": signal, "declared": list(declared)},
            )
        nul = find_nul(payload, "payload")
        if nul is not None:
            raise InvalidInput(
                "payload holds a NUL character (\\u0000), which cannot be stored",
                details={"payload": [f"{nul}: NUL characters are not allowed"]},
            )
        with self.engine.begin() as c:
            delivered = transitions.deliver_signal(c, rid, signal, payload, idempotency_key)
        assert delivered is not None
        if delivered.run_status not in ("pending", "running"):
            raise RunFinished(
                f"the run is {delivered.run_status}; it takes no more signals",
                details={"status": delivered.run_status, "signal": signal},
            )
        self.send(rid, name, delivered.woken)
        return self.get(rid)

    def fork(
        self, run_id: uuid.UUID | str, from_step: str, payload: Any = None
    ) -> RunDict:
        """A new run from ``from_step`` of a finished run; the source is not changed.

        The new run copies the source's own graph (its rows, not the deployed
        code): the steps ``from_step`` depends on, transitively, keep their
        outputs as ``succeeded``; ``from_step`` and everything else is pending.
        ``payload``, when given, is the new run's input (validated like a start).
        """
        rid = _as_uuid(run_id)
        with self.engine.connect() as c:
            source = c.execute(
                sa.select(runs.c.name, runs.c.status, runs.c.input, runs.c.definition_version)
                .where(runs.c.id == rid)
            ).first()
            rows = [dict(r) for r in c.execute(
                sa.select(steps.c.position, steps.c.name, steps.c.after, steps.c.kind,
                          steps.c.signal, steps.c.compensates, steps.c.status, steps.c.output)
                .where(steps.c.run_id == rid).order_by(steps.c.position)
            ).mappings()]
        if source is None:
            raise RunNotFound(f"no run with id {rid}")
        if source.status in ("pending", "running"):
            raise IllegalTransition(
                f"cannot fork a run that is {source.status}: cancel it or let it finish",
                details={"status": source.status, "action": "fork"},
            )
        graph = {r["name"]: tuple(r["after"]) for r in rows if r["kind"] != "compensation"}
        if from_step not in graph:
            raise InvalidInput(
                f"run {rid} has no step {from_step!r}",
                details={"from_step": [f"one of: {', '.join(graph)}"]},
            )
        kept = ancestors(graph, from_step)
        missing = sorted(n for n in kept if next(r for r in rows if r["name"] == n)["status"]
                         not in ("succeeded", "skipped"))
        if missing:
            raise InvalidInput(
                f"step {from_step!r} depends on steps that did not succeed: {', '.join(missing)}",
                details={"from_step": [f"not done in the source run: {', '.join(missing)}"]},
            )
        if payload is None:
            data = dict(source.input)
        else:
            workflow = self.registry.find(source.name, source.definition_version)
            if workflow is None:
                raise InvalidInput(
                    f"workflow {source.name!r} is not registered here; fork without new input",
                    details={"input": ["cannot be validated in this process"]},
                )
            data = self.validate_input(workflow, payload)
        new_id = uuid.uuid4()
        with self.engine.begin() as c:
            c.execute(runs.insert().values(
                id=new_id, name=source.name, status=RunStatus.PENDING.value, input=data,
                forked_from={"run_id": str(rid), "step": from_step},
                definition_version=source.definition_version,
                created_at=sa.func.now(), updated_at=sa.func.now(),
            ))
            c.execute(steps.insert().values([
                {
                    "run_id": new_id, "position": r["position"], "name": r["name"],
                    "after": r["after"], "kind": r["kind"], "signal": r["signal"],
                    "compensates": r["compensates"], "attempts": 0,
                    "status": r["status"] if r["name"] in kept else StepStatus.PENDING.value,
                    "output": r["output"] if r["name"] in kept else None,
                }
                for r in rows
            ]))
            ready = transitions.dispatch_ready(c, new_id)
        self.send(new_id, source.name, ready)
        return self.get(new_id)

    def wait(self, run_id: uuid.UUID | str, timeout: float) -> RunDict:
        """Block until the run is finished or ``timeout`` seconds pass; the run as it is then.

        Woken by Postgres ``LISTEN/NOTIFY`` (``app.engine.notify``), not by polling.
        """
        from app.engine.notify import wait_for_run

        rid = _as_uuid(run_id)
        wait_for_run(self.engine, rid, timeout)
        return self.get(rid)

    def ready_after(self, run_id: uuid.UUID, step: str) -> builtins.list[str]:
        """Steps made ready by ``step`` that have not started (to re-send after a redelivery)."""
        with self.engine.connect() as c:
            return list(c.execute(_READY_AFTER, {"run_id": run_id, "step": step}).scalars())

    def _raise_transition(self, conn: Connection, run_id: uuid.UUID, action: str) -> NoReturn:
        status = conn.execute(sa.select(runs.c.status).where(runs.c.id == run_id)).scalar()
        if status is None:
            raise RunNotFound(f"no run with id {run_id}")
        raise IllegalTransition(
            f"cannot {action} a run that is {status}",
            details={"status": status, "action": action},
        )

    def counts_by_status(self) -> dict[str, int]:
        with self.engine.connect() as c:
            rows = c.execute(
                sa.select(runs.c.status, sa.func.count()).group_by(runs.c.status)
            ).all()
        counts = {s.value: 0 for s in RunStatus}
        counts.update({str(row[0]): int(row[1]) for row in rows})
        return counts


_READY_AFTER = sa.text(
    f"""
    SELECT n.name FROM workflow_steps n JOIN workflow_runs r ON r.id = n.run_id
    WHERE n.run_id = :run_id AND r.status IN ({transitions.ACTIVE}) AND r.error IS NULL
      AND n.status = 'pending' AND n.kind <> 'compensation' AND :step = ANY(n.after)
      -- sent just now by the checkpoint: a duplicate need not send it again
      AND (n.dispatched_at IS NULL OR n.dispatched_at < now() - interval '2 seconds')
      AND NOT EXISTS (SELECT 1 FROM workflow_steps q
                      WHERE q.run_id = n.run_id AND q.name = ANY(n.after)
                        AND q.status NOT IN ({transitions.DONE}))
    """
).bindparams(sa.bindparam("run_id", type_=sa.Uuid))


def root_names(workflow: Workflow) -> list[str]:
    """The steps a new run starts with: forward steps that follow no other."""
    return [s.name for s in workflow.forward_steps if not s.after]


def step_rows_of(workflow: Workflow) -> list[dict[str, Any]]:
    """The rows a new run gets: its own copy of the graph. Roots are marked sent."""
    return [
        {
            "position": s.position,
            "name": s.name,
            "status": StepStatus.PENDING.value,
            "attempts": 0,
            "after": list(s.after),
            "kind": s.kind.value,
            "signal": s.signal,
            "compensates": s.compensates,
            "dispatched_at": (
                sa.func.now() if not s.after and s.kind is not StepKind.COMPENSATION else None
            ),
        }
        for s in workflow.steps
    ]


def _as_uuid(value: uuid.UUID | str) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise RunNotFound(f"no run with id {value}") from None

