"""The *Capacity test* section of the Dynamic thresholds tab: run the capacity test of the chosen
service from the panel (signed in; bounded parameters), follow its progress, then see p99 and
goodput against the offered load with the points A, B and C marked, and the limit it recommends
beside the knee of the live data and the manual estimate. *Apply* writes it like the knee's; a
second *Apply* writes the recommended cap on calls in flight per instance.

The run itself is :class:`telemetry.panel.capacity_job.CapacityJob` (a background thread, kept in
the session state, polled by a fragment)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import altair as alt
import pandas as pd
import streamlit as st

from telemetry.load.capacity import CapacityPoints, Step
from telemetry.load.settings import RATE_MAX
from telemetry.load.stepping import StepPlan
from telemetry.panel import figures
from telemetry.panel.capacity_job import CapacityJob, RefusedError
from telemetry.panel.changes import apply_cluster_limit, apply_concurrency_cap
from telemetry.panel.parts import guarded

if TYPE_CHECKING:
    from telemetry.panel.backends import Panel

__all__ = ["JOB", "MAX_SECONDS", "capacity", "plan_from"]

JOB = "capacity_job"
"""The session-state key of this session's test."""
MAX_SECONDS = 180.0
"""The whole test at most (the runner stops by itself before a step would pass it)."""
_NAMES = {"A": "A: best performance", "B": "B: edge of collapse", "C": "C: highest goodput"}


def plan_from(
    *, start: float, ceiling: float, steps: float, hold: float, headroom: float
) -> tuple[StepPlan, float]:
    """The plan and headroom of the form's fields; ValueError naming the field refused."""
    if not (math.isfinite(start) and start > 0):
        raise ValueError(f"capacity.start must be > 0 calls/s, got {start:g}")
    if not (math.isfinite(ceiling) and start < ceiling <= RATE_MAX):
        raise ValueError(
            f"capacity.ceiling must be above the start ({start:g}) and at most {RATE_MAX:g} "
            f"calls/s, got {ceiling:g}"
        )
    if not (steps == int(steps) and 3 <= steps <= 30):
        raise ValueError(f"capacity.steps must be a whole number within [3, 30], got {steps:g}")
    if not 1 <= hold <= 60:
        raise ValueError(f"capacity.hold must be within [1, 60] seconds, got {hold:g}")
    if not 0 < headroom <= 1:
        raise ValueError(f"capacity.headroom must be within (0, 1], got {headroom:g}")
    settle = min(3.0, max(0.3, hold / 3))
    plan = StepPlan(start=start, ceiling=ceiling, steps=int(steps), hold_seconds=hold,
                    settle_seconds=settle, max_seconds=MAX_SECONDS)  # fmt: skip
    return plan, headroom


def capacity(panel: Panel, service: str, actor: str | None, *, ready: bool, knee: float | None) -> None:
    """``ready``: etcd and Prometheus both answer; ``knee``: the live data's recommendation."""
    st.subheader("Capacity test")
    st.caption(
        "Offers the load generator's traffic in steady steps up to the ceiling, measures each "
        "step's goodput and p99 from Prometheus, and stops by itself when p99 or errors collapse, "
        f"at the ceiling or after {MAX_SECONDS:g} s; the load settings in force before come back. "
        "Run it with no limits in force: refused calls would count as goodput."
    )
    job: CapacityJob | None = st.session_state.get(JOB)
    running = job is not None and not job.done
    if actor is None:
        st.info("Read-only: sign in (sidebar) to run a capacity test.")
    elif not ready:
        st.warning("The capacity test needs etcd and Prometheus.")
    _form(panel, service, actor, disabled=actor is None or not ready or running)
    job = st.session_state.get(JOB)
    if job is None:
        return
    if not job.done:
        _progress(job)
    else:
        _results(panel, job, actor, knee)


def _form(panel: Panel, service: str, actor: str | None, *, disabled: bool) -> None:
    with st.form("form_capacity"):
        cols = st.columns(6)
        start = cols[0].number_input("Start (calls/s)", value=10.0, key="cap_start")
        ceiling = cols[1].number_input("Ceiling (calls/s)", value=200.0, key="cap_ceiling")
        steps = cols[2].number_input("Steps", value=12.0, step=1.0, key="cap_steps")
        hold = cols[3].number_input("Hold (s per step)", value=10.0, key="cap_hold")
        headroom = cols[4].number_input("Headroom", value=0.8, step=0.05, key="cap_headroom")
        choice = cols[5].radio("Recommend from", ["A", "B"], key="cap_choice", horizontal=True)
        if not st.form_submit_button(f"Run the capacity test of {service}", key="submit_capacity",
                                     disabled=disabled):  # fmt: skip
            return
    if actor is None:
        st.error("Sign in with the operator password to run a capacity test.")
        return
    try:
        plan, room = plan_from(start=start, ceiling=ceiling, steps=steps, hold=hold,
                               headroom=headroom)  # fmt: skip
    except ValueError as exc:
        st.error(f"Not started: {exc}")
        return
    job = CapacityJob(service, plan, choice="B" if choice == "B" else "A", headroom=room)
    try:
        st.session_state[JOB] = job.start(panel.plane, panel.live, actor)
    except RefusedError as exc:
        st.error(f"Not started: {exc}")
        return
    st.rerun()  # the form disabled and the progress shown while it runs


def _progress(job: CapacityJob) -> None:
    @st.fragment(run_every=1.0)
    def capacity_progress() -> None:
        if job.done:
            st.rerun(scope="app")
        share = min(job.elapsed() / job.plan.max_seconds, 1.0)
        last = job.measured[-1] if job.measured else None
        shown = "" if last is None else (
            f": last {figures.rate_text(last.offered)} offered, goodput "
            f"{figures.rate_text(last.goodput)}, p99 {figures.ms_text(last.p99)}"
        )  # fmt: skip
        st.progress(share, text=f"Capacity test of {job.service}: {len(job.measured)} of "
                    f"{job.plan.steps} steps measured{shown}")  # fmt: skip

    capacity_progress()


def _results(panel: Panel, job: CapacityJob, actor: str | None, knee: float | None) -> None:
    if job.error is not None or job.points is None or job.result is None:
        st.error(f"The capacity test of {job.service} failed: {job.error}")
        return
    points = job.points
    st.markdown(f"**Capacity test of {job.service}**: stopped, {job.result.stopped} "
                f"({job.result.seconds:.0f} s)")  # fmt: skip
    with guarded("Capacity chart"):
        if points.steps:
            left, right = st.columns(2)
            left.altair_chart(_curve(points, "p99 (ms)"), width="stretch", key="cap_p99")
            right.altair_chart(_curve(points, "goodput (calls/s)"), width="stretch", key="cap_good")
            st.dataframe(pd.DataFrame(_rows(points)), hide_index=True, key="capacity_steps")
    (st.success if points.limit is not None else st.info)(points.reason)
    cols = st.columns(4)
    cols[0].metric(f"Capacity test ({points.choice}, {points.headroom:.0%})",
                   figures.rate_text(points.limit))  # fmt: skip
    cols[1].metric("Cap in flight per instance",
                   "-" if points.concurrency is None else f"{points.concurrency:,}")  # fmt: skip
    cols[2].metric("Knee of the live data", figures.rate_text(knee))
    cols[3].metric("Manual estimate (CPU per call)", figures.rate_text(points.manual))
    st.caption(
        "Cap: C's goodput per instance within the low-load p99, rounded up (none until the test "
        "reaches B); manual estimate: 1000 / CPU ms per call x cores x instances, from the CPU "
        "measured at the low-load steps; the knee: the recommendation above, from the live data."
    )
    if points.limit is not None:
        apply_cluster_limit(panel, actor, job.service, points.limit, key="apply_capacity",
                            burst=points.burst)  # fmt: skip
    if points.concurrency is not None:
        apply_concurrency_cap(panel, actor, job.service, points.concurrency, key="apply_capacity_cap")


def _marks(points: CapacityPoints) -> dict[int, str]:
    marks: dict[int, str] = {}
    for name, step in (("A", points.a), ("B", points.b), ("C", points.c)):
        if step is not None:
            marks[id(step)] = marks.get(id(step), "") + name
    return marks


def _rows(points: CapacityPoints) -> list[dict[str, Any]]:
    marks = _marks(points)
    return [
        {
            "offered calls/s": figures.rate(s.offered),
            "goodput calls/s": figures.rate(s.goodput),
            "p99 ms": figures.ms(s.p99),
            "errors %": figures.share(s.error_ratio),
            "CPU (cores)": None if s.cpu is None else round(s.cpu, 2),
            "point": marks.get(id(s), ""),
        }
        for s in points.steps
    ]


def _value(step: Step, y: str) -> float | None:
    return figures.ms(step.p99) if y.startswith("p99") else figures.rate(step.goodput)


def _curve(points: CapacityPoints, y: str) -> Any:
    """``y`` against the offered load: the measured line, and A, B and C as named marks (one
    label per step: "BC" where B and C are the same step)."""
    x_name = "offered (calls/s)"
    line = pd.DataFrame(
        {
            x_name: [figures.rate(s.offered) for s in points.steps],
            y: [_value(s, y) for s in points.steps],
            "series": y,
        }
    )
    named = [(n, s) for n, s in (("A", points.a), ("B", points.b), ("C", points.c)) if s is not None]
    marks = pd.DataFrame(
        [{x_name: figures.rate(s.offered), y: _value(s, y), "series": _NAMES[n]} for n, s in named],
        columns=[x_name, y, "series"],
    )
    by_step = _marks(points)
    labels = pd.DataFrame(
        [{x_name: figures.rate(s.offered), y: _value(s, y), "label": by_step[id(s)]}
         for s in points.steps if id(s) in by_step],
        columns=[x_name, y, "label"],
    )  # fmt: skip
    x = alt.X(f"{x_name}:Q", title="offered load (calls/s)")
    color = alt.Color("series:N", legend=figures.legend())
    base = alt.Chart(line).mark_line(point=True).encode(x=x, y=alt.Y(f"{y}:Q", title=y), color=color)
    dots = (
        alt.Chart(marks)
        .mark_point(size=160, filled=True)
        .encode(x=x, y=f"{y}:Q", color=color, tooltip=["series:N", f"{y}:Q", f"{x_name}:Q"])
    )
    text = alt.Chart(labels).mark_text(dy=-12, fontWeight="bold").encode(x=x, y=f"{y}:Q", text="label:N")
    return alt.layer(base, dots, text).properties(height=260)
