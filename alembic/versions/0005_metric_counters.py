"""workflow_metric_counters: monotonic /metrics counters kept by triggers

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-02

The counters of ``/metrics`` were recomputed from each row's current status,
so they went down (a retried failed run un-counted its failure) and each
scrape counted every run of the retention window. Here Postgres counts each
transition as it commits, whichever code path made it:

- a run inserted: ``runs_started`` by workflow, ``runs`` (the by-status gauge) +1;
- a run's status changed: ``runs`` -1 for the old status, +1 for the new;
  entering succeeded/failed/cancelled: ``runs_finished`` by workflow and status;
- runs deleted (the clean-up): ``runs`` -1 per status, one statement-level
  upsert per DELETE; ``runs_started``/``runs_finished`` are kept;
- a step entering ``retrying``: ``step_retries``; entering succeeded/failed
  after having started: one ``step_duration`` observation in its bucket.

Trigger conditions compare OLD and NEW status values only, so statuses added
later (``waiting``, ``skipped``, ``compensated`` ...) count nothing until a
trigger names them.

INSERT and DELETE count per statement (transition tables: a bulk statement is one
upsert per label set); a status UPDATE counts per row, filtered by the trigger's
WHEN so an UPDATE that leaves the status alone (a heartbeat) costs nothing. Many
status changes inside one transaction add to the same row version chain, so a
single statement changing tens of thousands of statuses is slow; the engine's
transitions change one run or step per statement.

No hot row: each backend adds to its own row per label set (``shard`` =
``pg_backend_pid()``), so concurrent commits never wait on one another for a
counter and no two transactions can deadlock on counter rows. A scrape sums the
rows and folds the unlocked ones into shard 0 (``app/metrics.py``), which keeps
the table at about one row per label set.
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0007"
branch_labels = None
depends_on = None

# Upper bounds (seconds) of the step-duration histogram's buckets; +Inf is implicit.
BUCKETS = "{0.005,0.01,0.025,0.05,0.1,0.25,0.5,1,2.5,5,10,30,60,300}"
KEY = "metric, workflow, step, status, le, shard"

UPGRADE = f"""
LOCK TABLE workflow_runs, workflow_steps IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE workflow_metric_counters (
    metric   text             NOT NULL,
    workflow text             NOT NULL DEFAULT '',
    step     text             NOT NULL DEFAULT '',
    status   text             NOT NULL DEFAULT '',
    le       double precision NOT NULL DEFAULT 0,  -- histogram bucket bound, else 0
    shard    integer          NOT NULL,            -- a backend's pid; 0 = folded
    count    bigint           NOT NULL DEFAULT 0,
    sum      double precision NOT NULL DEFAULT 0,
    CONSTRAINT pk_workflow_metric_counters PRIMARY KEY ({KEY})
);

CREATE FUNCTION stepwise_duration_buckets() RETURNS double precision[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT '{BUCKETS}'::double precision[] $$;

-- one upsert per label set and statement: a bulk INSERT adds its runs at once
CREATE FUNCTION stepwise_count_inserted_runs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO workflow_metric_counters AS m ({KEY}, count, sum)
    SELECT metric, workflow, '', status, 0, pg_backend_pid(), count(*), 0
    FROM (SELECT 'runs_started' AS metric, name AS workflow, '' AS status FROM inserted_runs
          UNION ALL
          SELECT 'runs', '', status FROM inserted_runs) AS added
    GROUP BY metric, workflow, status ORDER BY metric, workflow, status
    ON CONFLICT ({KEY}) DO UPDATE SET count = m.count + excluded.count;
    RETURN NULL;
END
$$;

-- Plain INSERTs in PL/pgSQL, not calls of a SQL helper: their plans are cached
-- per connection, which keeps the step path's cost to one small upsert.
CREATE FUNCTION stepwise_count_run_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO workflow_metric_counters AS m ({KEY}, count, sum)
    SELECT v.metric, v.workflow, '', v.status, 0, pg_backend_pid(), v.delta, 0
    FROM (VALUES ('runs', '', OLD.status, -1),
                 ('runs', '', NEW.status, 1),
                 ('runs_finished', NEW.name, NEW.status,
                  CASE WHEN NEW.status IN ('succeeded', 'failed', 'cancelled') THEN 1 END))
         AS v(metric, workflow, status, delta)
    WHERE v.delta IS NOT NULL
    ORDER BY v.metric, v.workflow, v.status
    ON CONFLICT ({KEY}) DO UPDATE SET count = m.count + excluded.count;
    RETURN NULL;
END
$$;

CREATE FUNCTION stepwise_uncount_deleted_runs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO workflow_metric_counters AS m ({KEY}, count, sum)
    SELECT 'runs', '', '', status, 0, pg_backend_pid(), -count(*), 0
    FROM deleted_runs GROUP BY status ORDER BY status
    ON CONFLICT ({KEY}) DO UPDATE SET count = m.count + excluded.count;
    RETURN NULL;
END
$$;

CREATE FUNCTION stepwise_uncount_truncated_runs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM workflow_metric_counters WHERE metric = 'runs';
    RETURN NULL;
END
$$;

CREATE FUNCTION stepwise_count_step() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    workflow_name text;
    seconds double precision := 0;
    bound double precision := 0;
BEGIN
    IF NEW.status <> 'retrying' THEN
        IF NEW.started_at IS NULL THEN
            RETURN NULL;  -- failed without ever running: no duration to observe
        END IF;
        seconds := greatest(extract(epoch FROM
            coalesce(NEW.finished_at, clock_timestamp()) - NEW.started_at), 0);
        bound := coalesce((SELECT min(b) FROM unnest(stepwise_duration_buckets()) AS b
                           WHERE seconds <= b), 'Infinity');
    END IF;
    SELECT name INTO workflow_name FROM workflow_runs WHERE id = NEW.run_id;
    INSERT INTO workflow_metric_counters AS m ({KEY}, count, sum)
    VALUES (CASE WHEN NEW.status = 'retrying' THEN 'step_retries' ELSE 'step_duration' END,
            workflow_name, NEW.name,
            CASE WHEN NEW.status = 'retrying' THEN '' ELSE NEW.status END,
            bound, pg_backend_pid(), 1, seconds)
    ON CONFLICT ({KEY})
    DO UPDATE SET count = m.count + excluded.count, sum = m.sum + excluded.sum;
    RETURN NULL;
END
$$;

CREATE TRIGGER count_inserted_runs AFTER INSERT ON workflow_runs
    REFERENCING NEW TABLE AS inserted_runs
    FOR EACH STATEMENT EXECUTE FUNCTION stepwise_count_inserted_runs();
CREATE TRIGGER count_run_status AFTER UPDATE OF status ON workflow_runs
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION stepwise_count_run_status();
CREATE TRIGGER uncount_deleted_runs AFTER DELETE ON workflow_runs
    REFERENCING OLD TABLE AS deleted_runs
    FOR EACH STATEMENT EXECUTE FUNCTION stepwise_uncount_deleted_runs();
CREATE TRIGGER uncount_truncated_runs AFTER TRUNCATE ON workflow_runs
    FOR EACH STATEMENT EXECUTE FUNCTION stepwise_uncount_truncated_runs();
CREATE TRIGGER count_step_status AFTER UPDATE OF status ON workflow_steps
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status
                       AND NEW.status IN ('retrying', 'succeeded', 'failed'))
    EXECUTE FUNCTION stepwise_count_step();
"""

# What the rows already say, counted once. Writes to both tables are blocked from
# the first statement until this migration commits, so no transition is counted
# twice or missed.
BACKFILL = f"""
INSERT INTO workflow_metric_counters ({KEY}, count, sum)
SELECT 'runs', '', '', status, 0, 0, count(*), 0 FROM workflow_runs GROUP BY status;

INSERT INTO workflow_metric_counters ({KEY}, count, sum)
SELECT 'runs_started', name, '', '', 0, 0, count(*), 0 FROM workflow_runs GROUP BY name;

INSERT INTO workflow_metric_counters ({KEY}, count, sum)
SELECT 'runs_finished', name, '', status, 0, 0, count(*), 0 FROM workflow_runs
WHERE status IN ('succeeded', 'failed', 'cancelled') GROUP BY name, status;

INSERT INTO workflow_metric_counters ({KEY}, count, sum)
SELECT 'step_retries', r.name, s.name, '', 0, 0, sum(s.attempts - 1), 0
FROM workflow_steps s JOIN workflow_runs r ON r.id = s.run_id
WHERE s.attempts > 1 GROUP BY r.name, s.name;

INSERT INTO workflow_metric_counters ({KEY}, count, sum)
SELECT 'step_duration', workflow, step, status, le, 0, count(*), sum(seconds)
FROM (
    SELECT r.name AS workflow, s.name AS step, s.status, d.seconds,
           coalesce((SELECT min(b) FROM unnest(stepwise_duration_buckets()) AS b
                     WHERE d.seconds <= b), 'Infinity') AS le
    FROM workflow_steps s
    JOIN workflow_runs r ON r.id = s.run_id
    CROSS JOIN LATERAL (SELECT greatest(extract(epoch FROM s.finished_at - s.started_at), 0)
                        AS seconds) AS d
    WHERE s.status IN ('succeeded', 'failed')
      AND s.started_at IS NOT NULL AND s.finished_at IS NOT NULL
) AS observed
GROUP BY workflow, step, status, le;
"""

DOWNGRADE = """
DROP TRIGGER IF EXISTS count_step_status ON workflow_steps;
DROP TRIGGER IF EXISTS uncount_truncated_runs ON workflow_runs;
DROP TRIGGER IF EXISTS uncount_deleted_runs ON workflow_runs;
DROP TRIGGER IF EXISTS count_run_status ON workflow_runs;
DROP TRIGGER IF EXISTS count_inserted_runs ON workflow_runs;
DROP FUNCTION IF EXISTS stepwise_count_step();
DROP FUNCTION IF EXISTS stepwise_uncount_truncated_runs();
DROP FUNCTION IF EXISTS stepwise_uncount_deleted_runs();
DROP FUNCTION IF EXISTS stepwise_count_run_status();
DROP FUNCTION IF EXISTS stepwise_count_inserted_runs();
DROP FUNCTION IF EXISTS stepwise_duration_buckets();
DROP TABLE IF EXISTS workflow_metric_counters;
"""


def upgrade() -> None:
    op.execute(UPGRADE)
    op.execute(BACKFILL)


def downgrade() -> None:
    op.execute(DOWNGRADE)
