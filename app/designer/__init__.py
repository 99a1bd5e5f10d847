"""Designed workflows (DESIGN §14): built in the browser from building blocks,
stored and versioned in Postgres, run by the same engine and step protocol.

- ``actions``: the building blocks, each with a JSON Schema for its parameters;
- ``templates`` and ``conditions``: the only "language" a definition has —
  path lookups (``{{ input.email }}``) and declarative conditions, never code;
- ``validation``: every problem of a definition, each named;
- ``store``: versions in ``workflow_definitions``; ``StoredDefinitions`` is the
  registry's source of stored workflows (``app.engine.registry``);
- ``build``: a stored definition as a frozen ``Workflow``.

Every step of every designed workflow runs through one Celery task on one
queue (``DESIGNED_TASK``), since definitions are saved after workers start;
the task loads the run's own version (``workers.steps``).
"""

DESIGNED_TASK = "stepwise.designed"
DESIGNED_QUEUE = "stepwise.designed"
