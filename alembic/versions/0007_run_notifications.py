"""notify listeners when a run moves: a trigger on workflow_runs (DESIGN §10, awaiting a run)

Every code path that changes a run's status, or touches its ``updated_at``
(the first claim, a takeover, a retry, a failure, the finish), sends
``pg_notify('stepwise_runs', '<run id>:<status>')`` at commit, so waiters and
the live dashboard are woken without any engine code knowing about them.

The payload is kept to the id and the status (at most 46 bytes): listeners
re-read the run, so the notice only has to say which run to look at.
``workflow_steps`` gets no trigger of its own: a NOTIFY per step would
serialise every checkpoint's commit; the run page refreshes its steps every
2 s while its run is active instead.
The setting ``stepwise.notify`` tunes it: ``all`` (default), ``status`` (only
status changes: ``?wait=`` is unaffected, the dashboard then shows step
progress at each run status change only, and busy clusters commit faster —
see docs/performance.md), ``off`` (a bulk loader's ``SET LOCAL``). Set it per
database: ``ALTER DATABASE stepwise SET stepwise.notify = 'status'``.

Revision ID: 0007
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0004"
branch_labels = None
depends_on = None

CHANNEL = "stepwise_runs"


def upgrade() -> None:
    op.execute(
        f"""
        CREATE FUNCTION stepwise_notify_run() RETURNS trigger
        LANGUAGE plpgsql AS $$
        DECLARE
            mode text;
        BEGIN
            mode := coalesce(nullif(current_setting('stepwise.notify', true), ''), 'all');
            IF mode = 'off' OR (mode = 'status' AND TG_OP = 'UPDATE'
                                AND OLD.status IS NOT DISTINCT FROM NEW.status) THEN
                RETURN NULL;
            END IF;
            PERFORM pg_notify('{CHANNEL}', NEW.id::text || ':' || NEW.status);
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER trg_workflow_runs_notify_insert
        AFTER INSERT ON workflow_runs
        FOR EACH ROW EXECUTE FUNCTION stepwise_notify_run()
        """
    )
    op.execute(
        """
        CREATE TRIGGER trg_workflow_runs_notify_update
        AFTER UPDATE OF status, updated_at ON workflow_runs
        FOR EACH ROW
        WHEN (OLD.status IS DISTINCT FROM NEW.status
              OR OLD.updated_at IS DISTINCT FROM NEW.updated_at)
        EXECUTE FUNCTION stepwise_notify_run()
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS trg_workflow_runs_notify_update ON workflow_runs")
    op.execute("DROP TRIGGER IF EXISTS trg_workflow_runs_notify_insert ON workflow_runs")
    op.execute("DROP FUNCTION IF EXISTS stepwise_notify_run()")
