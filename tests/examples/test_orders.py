"""The tutorial's workflow (docs/writing-workflows.md), end to end with a real worker."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from tests.e2e.conftest import wait_status
from tests.support.polling import wait_for


@pytest.fixture
def sku(engine) -> str:
    name = f"sku-{uuid.uuid4().hex[:8]}"
    with engine.begin() as c:
        c.execute(sa.text("INSERT INTO example_stock (sku, available) VALUES (:s, 5)"), {"s": name})
    return name


def order(sku: str, quantity: int, email: str = "buyer@example.com") -> dict:
    return {"order_id": uuid.uuid4().hex, "sku": sku, "quantity": quantity,
            "amount_cents": 1999, "email": email}


def available(engine, sku: str) -> int:
    with engine.connect() as c:
        return c.execute(sa.text("SELECT available FROM example_stock WHERE sku = :s"),
                         {"s": sku}).scalar_one()


def charges_for(engine, run_id) -> int:
    with engine.connect() as c:
        return c.execute(sa.text("SELECT count(*) FROM example_charges WHERE idempotency_key = :k"),
                         {"k": f"{run_id}:charge"}).scalar_one()


def test_an_order_reserves_charges_ships_and_notifies(manager, worker, engine, sku):
    run_id = manager.start("order_fulfilment", order(sku, 2)).run["id"]
    run = wait_status(manager, run_id, "succeeded", "failed")
    assert run["status"] == "succeeded", run["error"]
    assert [s["name"] for s in run["steps"]] == ["reserve_stock", "charge", "ship", "notify_customer"]
    assert run["output"]["reserve_stock"] == {"reserved": 2, "remaining": 3}
    assert run["output"]["ship"]["charge_id"] == run["output"]["charge"]["charge_id"]
    assert available(engine, sku) == 3
    assert charges_for(engine, run_id) == 1


def test_a_redelivered_charge_does_not_charge_twice(manager, worker, engine, sku):
    from workers import app

    run_id = manager.start("order_fulfilment", order(sku, 1)).run["id"]
    wait_status(manager, run_id, "succeeded")
    # the worst case: the checkpoint was lost and the step really runs again
    with engine.begin() as c:
        c.execute(sa.text("UPDATE workflow_steps SET status = 'pending' "
                          "WHERE run_id = :r AND name = 'charge'"), {"r": str(run_id)})
        c.execute(sa.text("UPDATE workflow_runs SET status = 'running' WHERE id = :r"),
                  {"r": str(run_id)})
    app.send_task("order_fulfilment.charge", args=(str(run_id),))
    wait_for(lambda: manager.get(run_id)["steps"][1]["attempts"] == 2, what="the charge to re-run")
    assert charges_for(engine, run_id) == 1
    assert available(engine, sku) == 4  # the reservation was not repeated either


def test_out_of_stock_fails_at_once_and_reserves_nothing(manager, worker, engine, sku):
    run_id = manager.start("order_fulfilment", order(sku, 6)).run["id"]
    run = wait_status(manager, run_id, "failed")
    assert run["error"]["type"] == "OutOfStock" and run["error"]["retryable"] is False
    assert run["steps"][0]["attempts"] == 1
    assert available(engine, sku) == 5
    assert charges_for(engine, run_id) == 0


def test_a_declined_card_fails_the_run_after_the_reservation(manager, worker, engine, sku):
    run_id = manager.start("order_fulfilment", order(sku, 1, "x@declined.example")).run["id"]
    run = wait_status(manager, run_id, "failed")
    assert run["error"]["step"] == "charge" and run["error"]["type"] == "CardDeclined"
    assert [s["status"] for s in run["steps"]] == ["succeeded", "failed", "pending", "pending"]
