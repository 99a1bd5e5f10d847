from app.dashboard.graph import columns, compensations


def test_parallel_branches_share_a_column_and_a_join_follows_its_last_predecessor():
    steps = [
        {"name": "split", "after": [], "kind": "task"},
        {"name": "left", "after": ["split"], "kind": "task"},
        {"name": "right", "after": ["split"], "kind": "task"},
        {"name": "slow", "after": ["right"], "kind": "sleep"},
        {"name": "join", "after": ["left", "slow"], "kind": "task"},
        {"name": "undo_split", "after": [], "kind": "compensation"},
    ]
    assert [[s["name"] for s in col] for col in columns(steps)] == [
        ["split"], ["left", "right"], ["slow"], ["join"]
    ]
    assert [s["name"] for s in compensations(steps)] == ["undo_split"]


def test_a_straight_line_is_one_step_per_column():
    steps = [{"name": n, "after": [p] if p else [], "kind": "task"}
             for n, p in (("a", None), ("b", "a"), ("c", "b"))]
    assert [[s["name"] for s in col] for col in columns(steps)] == [["a"], ["b"], ["c"]]
