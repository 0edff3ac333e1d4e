"""ct.Canary: what a team shipping a tuned model sees in answers, counters and spans."""

from __future__ import annotations

import asyncio
import threading
import time
import tracemalloc

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import StatusCode

import canarytrace as ct
from canarytrace import attributes as A
from canarytrace.canary import Canary
from canarytrace.context import current_scope


def llm_spans(exporter, **match):
    """Finished LLM spans whose attributes include ``match`` (keys given as attribute names)."""
    found = [s for s in exporter.get_finished_spans()
             if s.attributes.get(A.GEN_AI_OPERATION_NAME) == A.OPERATION_CHAT]
    return [s for s in found if all(s.attributes.get(k) == v for k, v in match.items())]


def shadow_spans(exporter):
    return llm_spans(exporter, **{A.CANARY_ROLE: A.ROLE_SHADOW})


def primary_spans(exporter):
    return llm_spans(exporter, **{A.CANARY_ROLE: A.ROLE_PRIMARY})


def wait_until(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def base(request):
    return f"base answer to {request}"


def candidate(request):
    return f"candidate answer to {request}"


def failing_candidate(request):
    raise ValueError("candidate exploded")


def test_mirror_serves_the_base_answer_and_hides_candidate_failures(exporter):
    with Canary(base, failing_candidate, base_model="llama-3-8b",
                candidate_model="llama-3-8b-lora", mirror_rate=1.0) as canary:
        answers = [canary(f"question {i}") for i in range(20)]
    assert answers == [f"base answer to question {i}" for i in range(20)]
    stats = canary.stats
    assert (stats.requests, stats.mirrored, stats.candidate_errors) == (20, 20, 20)
    assert stats.pending_shadows == 0
    shadows = shadow_spans(exporter)
    assert len(shadows) == 20
    assert {s.status.status_code for s in shadows} == {StatusCode.ERROR}
    assert {s.attributes[A.ERROR_TYPE] for s in shadows} == {"ValueError"}


def test_primary_and_shadow_share_pair_id_input_labels_and_trace(exporter):
    request = {"user": "u-17", "tier": "gold",
               "messages": [{"role": "user", "content": "Refund my invoice"}]}
    with Canary(lambda r: "base", lambda r: "candidate", base_model="base-m",
                candidate_model="cand-m", mirror_rate=1.0, route="billing",
                cohort=lambda r: r["tier"]) as canary:
        assert canary(request) == "base"
    (primary,), (shadow,) = primary_spans(exporter), shadow_spans(exporter)
    for span, variant, model in ((primary, A.VARIANT_BASE, "base-m"),
                                 (shadow, A.VARIANT_CANDIDATE, "cand-m")):
        assert span.attributes[A.CANARY_VARIANT] == variant
        assert span.attributes[A.GEN_AI_REQUEST_MODEL] == model
        assert span.attributes[A.CANARY_ROUTE] == "billing"
        assert span.attributes[A.CANARY_COHORT] == "gold"
    assert primary.attributes[A.CANARY_PAIR_ID] == shadow.attributes[A.CANARY_PAIR_ID]
    assert primary.attributes[A.GEN_AI_INPUT_MESSAGES] == \
        shadow.attributes[A.GEN_AI_INPUT_MESSAGES]
    assert "Refund my invoice" in primary.attributes[A.GEN_AI_INPUT_MESSAGES]
    assert "candidate" in shadow.attributes[A.GEN_AI_OUTPUT_MESSAGES]
    assert primary.attributes[A.CANARY_MIRROR] == A.MIRROR_SENT
    # one trace: both arms are children of the canary's request span
    (request_span,) = [s for s in exporter.get_finished_spans() if s.name == "canary cand-m"]
    assert primary.context.trace_id == shadow.context.trace_id == request_span.context.trace_id
    assert primary.parent.span_id == shadow.parent.span_id == request_span.context.span_id


def test_each_request_gets_its_own_pair_id(exporter):
    with Canary(base, candidate, mirror_rate=1.0) as canary:
        for i in range(5):
            canary(i)
    pairs = {s.attributes[A.CANARY_PAIR_ID] for s in primary_spans(exporter)}
    assert pairs == {s.attributes[A.CANARY_PAIR_ID] for s in shadow_spans(exporter)}
    assert len(pairs) == 5


def test_sticky_assignment_is_deterministic_and_splits_within_two_points(exporter):
    ct.init(tracer_provider=TracerProvider(sampler=ALWAYS_OFF))  # 20k+ spans, none inspected
    requests = [{"user": f"user-{i}", "messages": "hi"} for i in range(10_000)]

    def run_all():
        with Canary(lambda r: "base", lambda r: "candidate", key=lambda r: r["user"],
                    canary_rate=0.3, mirror_rate=0.5, shadow_queue_size=1) as canary:
            return [canary(r) for r in requests], canary.stats

    answers, stats = run_all()
    assert abs(answers.count("candidate") / len(requests) - 0.3) <= 0.02
    # mirroring samples the base-served requests with an independent draw
    assert abs((stats.mirrored + stats.dropped) / stats.served_base - 0.5) <= 0.02
    again, _ = run_all()
    assert again == answers


def test_without_a_key_assignment_is_random(exporter):
    with Canary(lambda r: "base", lambda r: "candidate", canary_rate=0.5) as canary:
        answers = [canary("same request") for _ in range(400)]
    assert 150 < answers.count("candidate") < 250


def test_canary_mode_falls_back_to_the_base_on_exception(exporter):
    with Canary(base, failing_candidate, base_model="b", candidate_model="c",
                canary_rate=1.0) as canary:
        assert canary("q") == "base answer to q"
    assert (canary.stats.fallbacks, canary.stats.candidate_errors) == (1, 1)
    (failed,) = llm_spans(exporter, **{A.CANARY_VARIANT: A.VARIANT_CANDIDATE})
    assert failed.attributes[A.CANARY_ROLE] == A.ROLE_PRIMARY
    assert failed.status.status_code == StatusCode.ERROR
    (served,) = llm_spans(exporter, **{A.CANARY_VARIANT: A.VARIANT_BASE})
    assert served.attributes[A.CANARY_FALLBACK] is True
    assert served.attributes[A.ERROR_TYPE] == "ValueError"
    assert served.attributes[A.CANARY_CANDIDATE_MODEL] == "c"
    assert "base answer to q" in served.attributes[A.GEN_AI_OUTPUT_MESSAGES]


def test_without_fallback_the_candidate_exception_reaches_the_caller(exporter):
    with Canary(base, failing_candidate, canary_rate=1.0, fallback=False) as canary, \
            pytest.raises(ValueError, match="candidate exploded"):
        canary("q")
    assert canary.stats.fallbacks == 0


def test_canary_mode_falls_back_to_the_base_on_timeout(exporter):
    finished = threading.Event()

    def slow_candidate(request):
        time.sleep(1.0)
        finished.set()
        return "too late"

    with Canary(base, slow_candidate, base_model="b", candidate_model="c",
                canary_rate=1.0, timeout_s=0.05) as canary:
        assert canary("q") == "base answer to q"
        assert not finished.is_set()  # answered without waiting for the candidate
        assert (canary.stats.candidate_timeouts, canary.stats.fallbacks) == (1, 1)
        (served,) = llm_spans(exporter, **{A.CANARY_VARIANT: A.VARIANT_BASE})
        assert served.attributes[A.CANARY_FALLBACK] is True
        assert served.attributes[A.ERROR_TYPE] == "TimeoutError"
        assert finished.wait(5)
    wait_until(lambda: llm_spans(exporter, **{A.CANARY_VARIANT: A.VARIANT_CANDIDATE}))
    (late,) = llm_spans(exporter, **{A.CANARY_VARIANT: A.VARIANT_CANDIDATE})
    assert late.attributes[A.ERROR_TYPE] == "TimeoutError"
    assert "too late" in late.attributes[A.GEN_AI_OUTPUT_MESSAGES]


def test_saturated_pool_drops_and_counts_and_memory_stays_bounded(exporter):
    # unsampled spans: what is measured is the canary and its pool, not span storage
    ct.init(tracer_provider=TracerProvider(sampler=ALWAYS_OFF))
    release = threading.Event()
    canary = Canary(base, lambda r: release.wait(60) and "late", mirror_rate=1.0,
                    shadow_workers=2, shadow_queue_size=8)
    pool = canary.shadow_pool
    longest_queue = 0
    tracemalloc.start()
    try:
        for i in range(10_000):
            assert canary(i) == f"base answer to {i}"
            longest_queue = max(longest_queue, pool.queued)
            if i == 999:
                warm, _ = tracemalloc.get_traced_memory()
        grown = tracemalloc.get_traced_memory()[0] - warm
    finally:
        tracemalloc.stop()
        release.set()
    stats = canary.stats
    assert grown < 512 * 1024, f"memory grew by {grown} bytes over 9,000 dropped shadows"
    assert longest_queue <= 8
    assert stats.pending_shadows <= 2 + 8
    assert stats.mirrored + stats.dropped == 10_000
    assert stats.dropped >= 10_000 - (2 + 8)
    canary.close(timeout=5)
    assert canary.stats.pending_shadows == 0


def test_close_waits_for_in_flight_shadows_then_serves_the_base_only(exporter):
    def slow_candidate(request):
        time.sleep(0.2)
        return "shadow done"

    canary = Canary(base, slow_candidate, mirror_rate=1.0, canary_rate=0.0)
    canary("a")
    canary.close(timeout=5)
    assert len(shadow_spans(exporter)) == 1
    canary.set_rates(canary_rate=1.0)
    assert canary("b") == "base answer to b"
    assert canary.stats.mirrored == 1


def test_close_that_runs_out_of_time_drops_and_counts_the_queued_shadows(exporter):
    started, release = threading.Event(), threading.Event()

    def blocked_candidate(request):
        started.set()
        release.wait(10)
        return "shadow done"

    canary = Canary(base, blocked_candidate, mirror_rate=1.0, shadow_workers=1)
    for i in range(4):
        canary(i)
    assert started.wait(5)
    canary.close(timeout=0.05)  # one shadow running, three still queued
    assert canary.stats.dropped == 3
    release.set()
    wait_until(lambda: canary.stats.pending_shadows == 0)
    assert len(shadow_spans(exporter)) == 1


def test_rates_change_at_run_time_and_kill_switch_stops_the_candidate(exporter):
    roles = []

    def counted_candidate(request):
        roles.append(current_scope()[A.CANARY_ROLE])
        return "candidate"

    users = [f"user-{i}" for i in range(200)]
    with Canary(lambda r: "base", counted_candidate, key=lambda r: r) as canary:
        assert {canary(u) for u in users} == {"base"}
        canary.set_rates(canary_rate=0.5)
        half = [canary(u) for u in users]
        assert 70 < half.count("candidate") < 130
        canary.set_rates(canary_rate=1.0)  # progressive rollout keeps the first half in
        assert [canary(u) for u in users] == ["candidate"] * 200
        canary.set_rates(mirror_rate=1.0, canary_rate=0.0)
        assert {canary(u) for u in users} == {"base"}
        wait_until(lambda: canary.stats.pending_shadows == 0)
        calls_before_kill = len(roles)
        assert roles.count(A.ROLE_SHADOW) > 0

        canary.kill()
        canary.set_rates(canary_rate=0.5)
        assert {canary(u) for u in users} == {"base"}
        time.sleep(0.05)
        assert len(roles) == calls_before_kill

        canary.revive()
        assert "candidate" in {canary(u) for u in users}


def test_invalid_rates_are_refused_and_leave_the_old_ones(exporter):
    canary = Canary(base, candidate, mirror_rate=0.2)
    with pytest.raises(ValueError, match="canary_rate"):
        canary.set_rates(canary_rate=1.5)
    with pytest.raises(ValueError, match="mirror_rate"):
        Canary(base, candidate, mirror_rate=-0.1)
    assert (canary.rates.mirror_rate, canary.rates.canary_rate) == (0.2, 0.0)


def test_counters_are_exported_as_metrics_with_the_models(exporter):
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("test")
    with Canary(base, failing_candidate, base_model="b", candidate_model="c",
                canary_rate=1.0, meter=meter) as canary:
        for i in range(3):
            canary(i)
    points = {}
    for resource in reader.get_metrics_data().resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    points[metric.name] = (point.value, dict(point.attributes))
    models = {A.CANARY_BASE_MODEL: "b", A.CANARY_CANDIDATE_MODEL: "c"}
    assert points["canarytrace.canary.requests"] == (3, models)
    assert points["canarytrace.canary.fallbacks"] == (3, models)
    assert points["canarytrace.canary.candidate_errors"] == (3, models)


def test_llm_decorated_arms_record_their_own_spans_with_the_canary_labels(exporter):
    @ct.llm(model="base-m")
    def decorated_base(messages):
        return "base says hi"

    @ct.llm(model="cand-m")
    def decorated_candidate(messages):
        raise RuntimeError("cuda oom")

    with Canary(decorated_base, decorated_candidate, mirror_rate=1.0, route="chat") as canary:
        assert canary([{"role": "user", "content": "hello"}]) == "base says hi"
    spans = llm_spans(exporter)
    assert len(spans) == 2  # no extra wrapper span around an instrumented arm
    (primary,), (shadow,) = primary_spans(exporter), shadow_spans(exporter)
    assert primary.attributes[A.GEN_AI_REQUEST_MODEL] == "base-m"
    assert shadow.attributes[A.GEN_AI_REQUEST_MODEL] == "cand-m"
    assert primary.attributes[A.CANARY_PAIR_ID] == shadow.attributes[A.CANARY_PAIR_ID]
    assert primary.attributes[A.GEN_AI_INPUT_MESSAGES] == \
        shadow.attributes[A.GEN_AI_INPUT_MESSAGES]
    assert shadow.attributes[A.CANARY_ROUTE] == "chat"
    assert shadow.attributes[A.ERROR_TYPE] == "RuntimeError"


def test_broken_key_and_route_callables_never_break_serving(exporter):
    def broken(request):
        raise KeyError("no such field")

    with Canary(base, candidate, key=broken, route=broken, canary_rate=0.0,
                mirror_rate=1.0) as canary:
        assert canary("q") == "base answer to q"
    (primary,) = primary_spans(exporter)
    assert A.CANARY_ROUTE not in primary.attributes
    assert canary.stats.mirrored == 1


async def test_async_mirror_serves_base_and_records_both_arms(exporter):
    async def abase(request):
        await asyncio.sleep(0.01)
        return "async base"

    async def acandidate(request):
        await asyncio.sleep(0.02)
        raise ValueError("async candidate failed")

    async with Canary(abase, acandidate, base_model="b", candidate_model="c",
                      mirror_rate=1.0) as canary:
        answers = await asyncio.gather(*(canary.acall(f"q{i}") for i in range(10)))
    assert answers == ["async base"] * 10
    assert (canary.stats.mirrored, canary.stats.candidate_errors) == (10, 10)
    shadows = shadow_spans(exporter)
    assert len(shadows) == 10
    primaries = {s.attributes[A.CANARY_PAIR_ID]: s for s in primary_spans(exporter)}
    for shadow in shadows:
        primary = primaries[shadow.attributes[A.CANARY_PAIR_ID]]
        assert primary.context.trace_id == shadow.context.trace_id
        assert primary.attributes[A.GEN_AI_INPUT_MESSAGES] == \
            shadow.attributes[A.GEN_AI_INPUT_MESSAGES]


async def test_async_canary_falls_back_on_timeout_and_cancels_the_candidate(exporter):
    cancelled = asyncio.Event()

    async def abase(request):
        return "async base"

    async def hanging_candidate(request):
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async with Canary(abase, hanging_candidate, canary_rate=1.0, timeout_s=0.05) as canary:
        assert await canary.acall("q") == "async base"
    assert cancelled.is_set()
    assert (canary.stats.candidate_timeouts, canary.stats.fallbacks) == (1, 1)
    (failed,) = llm_spans(exporter, **{A.CANARY_VARIANT: A.VARIANT_CANDIDATE})
    assert failed.attributes[A.ERROR_TYPE] == "TimeoutError"
    (served,) = llm_spans(exporter, **{A.CANARY_VARIANT: A.VARIANT_BASE})
    assert served.attributes[A.CANARY_FALLBACK] is True


async def test_async_shadows_are_bounded_and_drops_counted(exporter):
    release = asyncio.Event()

    async def abase(request):
        return "async base"

    async def blocked_candidate(request):
        await release.wait()
        return "late"

    canary = Canary(abase, blocked_candidate, mirror_rate=1.0, shadow_workers=2,
                    shadow_queue_size=3)
    for i in range(1000):
        assert await canary.acall(i) == "async base"
        assert canary.stats.pending_shadows <= 5
    assert (canary.stats.mirrored, canary.stats.dropped) == (5, 995)
    release.set()
    await canary.aclose(timeout=5)
    assert canary.stats.pending_shadows == 0
    assert len(shadow_spans(exporter)) == 5
    dropped = llm_spans(exporter, **{A.CANARY_MIRROR: A.MIRROR_DROPPED})
    assert len(dropped) == 995


async def test_async_llm_decorated_arms_carry_the_pair(exporter):
    @ct.llm(model="base-m")
    async def abase(messages):
        return "async base"

    @ct.llm(model="cand-m")
    async def acandidate(messages):
        await asyncio.sleep(0.01)
        return "async candidate"

    async with Canary(abase, acandidate, mirror_rate=1.0, cohort="beta") as canary:
        assert await canary.acall("hello") == "async base"
    (primary,), (shadow,) = primary_spans(exporter), shadow_spans(exporter)
    assert len(llm_spans(exporter)) == 2
    assert primary.attributes[A.CANARY_PAIR_ID] == shadow.attributes[A.CANARY_PAIR_ID]
    assert shadow.attributes[A.GEN_AI_REQUEST_MODEL] == "cand-m"
    assert shadow.attributes[A.CANARY_COHORT] == "beta"
    assert "async candidate" in shadow.attributes[A.GEN_AI_OUTPUT_MESSAGES]


def test_llm_decorated_candidate_that_overruns_timeout_is_marked_on_its_span(exporter):
    @ct.llm(model="cand-m")
    def slow_candidate(messages):
        time.sleep(0.3)
        return "too late"

    with Canary(base, slow_candidate, canary_rate=1.0, timeout_s=0.05) as canary:
        assert canary("q") == "base answer to q"
        wait_until(lambda: llm_spans(exporter, **{A.CANARY_VARIANT: A.VARIANT_CANDIDATE}))
    (late,) = llm_spans(exporter, **{A.CANARY_VARIANT: A.VARIANT_CANDIDATE})
    assert late.status.status_code == StatusCode.ERROR
    assert late.attributes[A.ERROR_TYPE] == "TimeoutError"
    assert "too late" in late.attributes[A.GEN_AI_OUTPUT_MESSAGES]


def test_slow_shadow_is_counted_and_only_its_own_span_marked_as_a_timeout(exporter):
    @ct.llm(model="inner-m")
    def slow_inner(messages):
        time.sleep(0.2)
        return "draft"

    @ct.llm(model="cand-m")
    def slow_candidate(messages):
        return slow_inner(messages) + " and more"

    with Canary(base, slow_candidate, mirror_rate=1.0, timeout_s=0.05) as canary:
        assert canary("q") == "base answer to q"
    assert canary.stats.candidate_timeouts == 1
    (shadow,) = llm_spans(exporter, **{A.GEN_AI_REQUEST_MODEL: "cand-m"})
    assert shadow.attributes[A.ERROR_TYPE] == "TimeoutError"
    (inner,) = llm_spans(exporter, **{A.GEN_AI_REQUEST_MODEL: "inner-m"})
    assert inner.attributes[A.CANARY_ROLE] == A.ROLE_SHADOW
    assert A.ERROR_TYPE not in inner.attributes
    (primary,) = primary_spans(exporter)  # the base answered in time
    assert A.ERROR_TYPE not in primary.attributes


async def test_async_llm_decorated_candidate_cancelled_at_timeout_records_a_timeout(exporter):
    async def abase(request):
        return "async base"

    @ct.llm(model="cand-m")
    async def hanging_candidate(messages):
        await asyncio.sleep(10)

    async with Canary(abase, hanging_candidate, canary_rate=1.0, timeout_s=0.05) as canary:
        assert await canary.acall("q") == "async base"
    assert canary.stats.candidate_timeouts == 1
    (failed,) = llm_spans(exporter, **{A.CANARY_VARIANT: A.VARIANT_CANDIDATE})
    assert failed.status.status_code == StatusCode.ERROR
    assert failed.attributes[A.ERROR_TYPE] == "TimeoutError"
