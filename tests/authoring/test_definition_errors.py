import pytest
from marshmallow import Schema, fields

from app.engine import DefinitionError, StepContext, Workflow
from app.engine.registry import Registry


class In(Schema):
    x = fields.Integer()


def make(name: str = "demo") -> Workflow:
    return Workflow(name, input_schema=In, register=False)


def test_steps_keep_declaration_order_and_task_names() -> None:
    wf = make()

    @wf.step()
    def one(ctx: StepContext) -> None: ...

    @wf.step(transactional=True, timeout=3)
    def two(ctx: StepContext, session: object) -> None: ...

    assert [(s.position, s.task_name) for s in wf.steps] == [(0, "demo.one"), (1, "demo.two")]
    assert wf.steps[1].transactional and wf.steps[1].timeout == 3


def test_duplicate_step_names_are_refused_with_workflow_and_step() -> None:
    wf = make()

    @wf.step()
    def one(ctx: StepContext) -> None: ...

    with pytest.raises(DefinitionError, match="workflow 'demo', step 'one': duplicate step name"):
        wf.step(name="one")(lambda ctx: None)


def test_a_frozen_workflow_takes_no_more_steps() -> None:
    wf = make()
    wf.step(name="one")(lambda ctx: None)
    wf.freeze()
    with pytest.raises(DefinitionError, match="workflow 'demo', step 'two': workflow is frozen"):
        wf.step(name="two")(lambda ctx: None)


@pytest.mark.parametrize("bad", ["Signup", "sign-up", "1st", "a.b", ""])
def test_invalid_workflow_names_are_refused(bad: str) -> None:
    with pytest.raises(DefinitionError, match="not valid"):
        make(bad)


def test_invalid_step_names_are_refused() -> None:
    with pytest.raises(DefinitionError, match="workflow 'demo', step 'Bad-Name'"):
        make().step(name="Bad-Name")(lambda ctx: None)


def test_input_schema_must_be_marshmallow() -> None:
    with pytest.raises(DefinitionError, match="workflow 'demo': input_schema must be a marshmallow"):
        Workflow("demo", input_schema=dict, register=False)  # type: ignore[arg-type]


def test_a_workflow_without_steps_cannot_be_frozen() -> None:
    with pytest.raises(DefinitionError, match="workflow 'demo' has no steps"):
        make().freeze()


def test_registry_refuses_two_workflows_with_one_name() -> None:
    registry = Registry()
    registry.add(make("same"))
    with pytest.raises(DefinitionError, match="'same' is defined twice"):
        registry.add(make("same"))


def test_step_policy_overrides_the_workflow_and_the_default() -> None:
    from app.engine.retry import RetryPolicy

    wf = Workflow("p", input_schema=In, retry=RetryPolicy(max_attempts=5), register=False)
    wf.step(name="a")(lambda ctx: None)
    wf.step(name="b", max_attempts=1)(lambda ctx: None)
    default = RetryPolicy(max_attempts=2)
    assert wf.policy_for(wf.steps[0], default).max_attempts == 5
    assert wf.policy_for(wf.steps[1], default).max_attempts == 1


def test_idempotency_key_is_run_and_step() -> None:
    import uuid

    rid = uuid.uuid4()
    ctx = StepContext(rid, "w", "charge", 1, 2, {}, {})
    assert ctx.idempotency_key == f"{rid}:charge"
