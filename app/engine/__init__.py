"""Stepwise's engine and its public authoring API.

Workflow authors import from here and nowhere else::

    from app.engine import NonRetryableError, RetryPolicy, StepContext, Workflow
"""

from app.engine.definition import StepContext, StepDefinition, Workflow
from app.engine.errors import (
    DefinitionError,
    NonRetryableError,
    RetryableError,
    StepError,
    StepwiseError,
)
from app.engine.retry import RetryPolicy

__all__ = [
    "DefinitionError",
    "NonRetryableError",
    "RetryPolicy",
    "RetryableError",
    "StepContext",
    "StepDefinition",
    "StepError",
    "StepwiseError",
    "Workflow",
]
