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


def test_an_unknown_predecessor_is_named_when_the_workflow_freezes() -> None:
    wf = make()
    wf.step(name="left")(lambda ctx: None)
    wf.step(name="join", after=["left", "lefty"])(lambda ctx: None)
    with pytest.raises(DefinitionError, match="workflow 'demo', step 'join': unknown predecessor 'lefty'"):
        wf.freeze()


def test_a_cycle_is_refused_naming_its_steps() -> None:
    wf = make()
    wf.step(name="a", after=["b"])(lambda ctx: None)
    wf.step(name="b", after=["a"])(lambda ctx: None)
    with pytest.raises(DefinitionError, match="the steps form a cycle"):
        wf.freeze()


def test_a_wait_for_an_undeclared_signal_is_refused() -> None:
    wf = Workflow("demo", input_schema=In, signals=("go",), register=False)
    with pytest.raises(DefinitionError, match="waits for signal 'stop', which the workflow does not declare"):
        wf.wait_for_signal("wait", signal="stop")


def test_a_signal_declared_twice_is_refused() -> None:
    with pytest.raises(DefinitionError, match="signal 'go' is declared twice"):
        Workflow("demo", input_schema=In, signals=("go", "go"), register=False)


def test_a_condition_that_is_not_callable_is_refused() -> None:
    with pytest.raises(DefinitionError, match="step 'x': the condition \\(when=\\) must be callable"):
        make().step(name="x", when=True)(lambda ctx: None)  # type: ignore[arg-type]


def test_a_sleep_needs_a_non_negative_duration() -> None:
    with pytest.raises(DefinitionError, match="step 'nap': seconds must be a non-negative number"):
        make().sleep("nap", seconds=-1)


def test_steps_without_after_follow_the_step_declared_before() -> None:
    wf = make()
    wf.step(name="one")(lambda ctx: None)
    wf.step(name="two")(lambda ctx: None)
    wf.step(name="three", after=["one"])(lambda ctx: None)
    assert [(s.name, s.after) for s in wf.steps] == [("one", ()), ("two", ("one",)), ("three", ("one",))]
