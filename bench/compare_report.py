"""The figures of ``bench.compare`` and their tables: every system side by side, and
the ratios issue 15's targets are stated in (all from the same run)."""

from __future__ import annotations

import statistics
from typing import Any

from bench.harness import summary_ms, table

COMPONENTS = ("client", "workers", "postgres", "redis")
# (ratio name, numerator system, denominator system, figure, target, "max" or "min")
TARGETS = (
    ("throughput stepwise/dbos", "stepwise", "dbos", "throughput_wps", 1.2, "min"),
    ("throughput stepwise/celery defaults", "stepwise", "celery defaults", "throughput_wps", 0.65, "min"),
    ("throughput stepwise/celery project", "stepwise", "celery project", "throughput_wps", None, ""),
    ("marginal step stepwise/dbos", "stepwise", "dbos", "marginal_step_ms", 1.0, "max"),
    ("marginal step stepwise/celery defaults", "stepwise", "celery defaults", "marginal_step_ms", 1.45,
     "max"),
    ("marginal step stepwise/celery project", "stepwise", "celery project", "marginal_step_ms", None, ""),
    ("3-step latency p50 stepwise/dbos", "stepwise", "dbos", "latency3_p50_ms", 1.1, "max"),
    ("3-step latency p50 stepwise/celery project", "stepwise", "celery project", "latency3_p50_ms", None,
     ""),
    ("CPU per workflow stepwise/celery defaults", "stepwise", "celery defaults", "cpu_ms_per_workflow", 1.4,
     "max"),
    ("CPU per workflow stepwise/dbos", "stepwise", "dbos", "cpu_ms_per_workflow", None, ""),
)


def _system_figures(phases: list[Any], latency: dict[int, Any], n: int) -> dict[str, Any]:
    rounds = []
    for phase in phases:
        per_wf = {k: round(v * 1000 / n, 3) for k, v in phase.cpu_s.items()}
        ours = sum(v for k, v in per_wf.items() if k in COMPONENTS)
        rounds.append({
            "workflows_per_s": round(n / phase.seconds, 1),
            "seconds": round(phase.seconds, 3),
            "start_ms_in_batch": round(phase.start_ms, 3),
            "cpu_ms_per_workflow": {**per_wf, "total": round(ours, 3)},
        })
    lat = {steps: summary_ms(latency[steps].total_s) for steps in (1, 3)}
    start_p50 = round(statistics.median(latency[3].start_s) * 1000, 3)
    best = max(rounds, key=lambda r: r["workflows_per_s"])
    leanest = min(rounds, key=lambda r: r["cpu_ms_per_workflow"]["total"])
    return {
        "rounds": rounds,
        "throughput_wps": best["workflows_per_s"],
        "cpu_ms_per_workflow": leanest["cpu_ms_per_workflow"]["total"],
        "cpu_by_component_ms": leanest["cpu_ms_per_workflow"],
        "latency_ms": {str(k): v for k, v in lat.items()},
        "latency3_p50_ms": lat[3]["p50_ms"],
        "marginal_step_ms": round((lat[3]["p50_ms"] - lat[1]["p50_ms"]) / 2, 3),
        "start_ms_p50": start_p50,
    }


def build_result(
    measured: dict[str, Any], sizes: dict[str, Any], smoke: bool, skipped: dict[str, str], pool: str,
    concurrency: int, events: bool = True,
) -> dict[str, Any]:
    n = sizes["workflows"]
    systems = {
        name: _system_figures(phases, measured["latency"][name], n)
        for name, phases in measured["throughput"].items()
    }
    ratios = {}
    for label, num, den, figure, target, sense in TARGETS:
        if num in systems and den in systems and systems[den][figure]:
            value = round(systems[num][figure] / systems[den][figure], 3)
            met = None if target is None else (value >= target if sense == "min" else value <= target)
            ratios[label] = {"value": value, "target": target, "sense": sense, "met": met}
    counts = {
        name: {
            str(steps): {k: round(v, 3) if isinstance(v, float) else v for k, v in c.items()}
            for steps, c in by_steps.items()
        }
        for name, by_steps in measured["counts"].items()
    }
    for by_steps in counts.values():
        one, three = by_steps["1"], by_steps["3"]
        by_steps["per_step"] = {
            k: round((three[k] - one[k]) / 2, 3) for k in three if k != "runs" and k in one
        }
    return {
        "bench": "compare",
        "smoke": smoke,
        "sizes": sizes,
        "stepwise_worker": {"pool": pool, "concurrency": concurrency, "loglevel": "warning",
                            "events": events},
        "systems": systems,
        "ratios": ratios,
        "counts": counts,
        "skipped": skipped,
    }


def _cell(systems: dict[str, Any], name: str, get: Any) -> Any:
    try:
        return get(systems[name])
    except KeyError:
        return "-"


def render(result: dict[str, Any]) -> str:
    systems = result["systems"]
    names = list(systems)
    n = result["sizes"]["workflows"]

    def rounds(figure: str) -> Any:
        return lambda s: " / ".join(str(r[figure]) for r in s["rounds"])

    def cpu(component: str) -> Any:
        return lambda s: s["cpu_by_component_ms"][component]

    rows = [
        [f"throughput, wf/s ({n} at once; rounds)", *(_cell(systems, x, rounds("workflows_per_s"))
                                                     for x in names)],
        ["marginal cost of a step, ms", *(systems[x]["marginal_step_ms"] for x in names)],
        ["3-step latency p50, ms", *(systems[x]["latency_ms"]["3"]["p50_ms"] for x in names)],
        ["3-step latency p95, ms", *(systems[x]["latency_ms"]["3"]["p95_ms"] for x in names)],
        ["1-step latency p50, ms", *(systems[x]["latency_ms"]["1"]["p50_ms"] for x in names)],
        ["start, ms per run (sequential p50)", *(systems[x]["start_ms_p50"] for x in names)],
        ["start, ms per run (in the batch)", *(_cell(systems, x, rounds("start_ms_in_batch"))
                                               for x in names)],
        ["CPU per workflow, ms (sum below)", *(systems[x]["cpu_ms_per_workflow"] for x in names)],
        *([f"  {c}", *(_cell(systems, x, cpu(c)) for x in names)] for c in COMPONENTS),
        ["  machine (every process)", *(_cell(systems, x, cpu("machine")) for x in names)],
        ["  host steal (the hypervisor's)", *(_cell(systems, x, cpu("steal")) for x in names)],
    ]
    parts = [table("same run, side by side (3 no-op steps unless stated)", ["", *names], rows)]
    ratio_rows = [
        [label, r["value"], "" if r["target"] is None else f"{'>=' if r['sense'] == 'min' else '<='} "
         f"{r['target']}", {None: "", True: "yes", False: "no"}[r["met"]]]
        for label, r in result["ratios"].items()
    ]
    if ratio_rows:
        parts.append(table("ratios (issue 15's targets)", ["ratio", "value", "target", "met"], ratio_rows))
    count_rows = []
    for name, by_steps in result["counts"].items():
        for key in ("statements", "statements_client", "statements_worker", "xact_commit",
                    "writing_commits"):
            if key in by_steps["3"]:
                count_rows.append([name, key, by_steps["1"][key], by_steps["3"][key],
                                   round(by_steps["3"][key] / 3, 3), by_steps["per_step"][key]])
    if count_rows:
        parts.append(table(
            "statements and commits (sequential runs)",
            ["system", "figure", "per 1-step run", "per 3-step run", "per step (3-step / 3)",
             "marginal per step"],
            count_rows,
        ))
    for name, reason in result["skipped"].items():
        parts.append(f"{name}: skipped ({reason})")
    return "\n\n".join(parts)
