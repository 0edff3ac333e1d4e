"""Held-out replay: every prompt of a dataset through two local transformers checkpoints, traced.

The plan is the dataset x configurations (the cartesian product of ``--sweep`` values) x
trials (seed = ``seed + trial``) x the two models. Each model answers in left-padded
batches through ``model.generate()`` under ``canarytrace.instrument_transformers()``, so
the batch's ``generate`` span is the SDK's own (labelled with the checkpoint path, it
carries the batch's token totals and never counts as a request of the compared models).
Each prompt gets its own LLM span, labelled with the model's name: its messages, its
answer and token counts, ``ct.expect`` with the row's expectations, the seed
(``gen_ai.request.seed``), the configuration as ``canary.cohort``, the dataset as
``canary.route``, and a ``canary.pair_id`` that base and candidate share for the same prompt
x trial x configuration (``PROMPT.REST``, so the comparison clusters a prompt's pairs).
Spans leave through the real OTLP/HTTP exporter to a collector.

Runs resume: a JSONL manifest (``<state dir>/replay/<run id>.jsonl``) records each answer
once its span was exported, keyed by the configuration's generation arguments, trial and
prompt key; the run id digests the dataset and both checkpoints' files, so a changed
dataset or a retrained checkpoint starts afresh.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import canarytrace as ct
from canarytrace import attributes as A
from canarytrace.analysis.datasets import Dataset, Example
from canarytrace.analysis.replay_models import (
    DEFAULT_MAX_NEW_TOKENS,
    Generation,
    LocalModel,
    ModelSpec,
    ReplayError,
)
from canarytrace.calls import LlmCall, get_tracer, start_attributes, start_call
from canarytrace.context import scoped_attributes

REPLAY_SERVICE = "canarytrace-replay"
PROVIDER = "transformers"
DEFAULT_BATCH_SIZE = 8
SAMPLING_ARGUMENTS = ("temperature", "top_p", "top_k")
REQUEST_ATTRIBUTES = {"temperature": A.GEN_AI_REQUEST_TEMPERATURE, "top_p": A.GEN_AI_REQUEST_TOP_P,
                      "top_k": A.GEN_AI_REQUEST_TOP_K,
                      "max_new_tokens": A.GEN_AI_REQUEST_MAX_TOKENS}
"""Generation arguments recorded on spans, by the GenAI attribute they go to."""

Progress = Callable[[int], None]
"""Called with the number of answers just generated."""


# --- what to run ---------------------------------------------------------------------------

def parse_value(text: str) -> Any:
    """A command-line value: ``true``/``false``, JSON (``0.2``, ``64``, ``null``), else text."""
    stripped = text.strip()
    if stripped.lower() in ("true", "false"):
        return stripped.lower() == "true"
    try:
        return json.loads(stripped)
    except ValueError:
        return stripped


def parse_assignment(text: str, option: str = "--gen") -> tuple[str, Any]:
    """``key=value`` as (key, parsed value)."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise ReplayError(f"{option} expects key=value, got {text!r}")
    return name.strip(), parse_value(value)


def parse_sweep(text: str) -> tuple[str, list[Any]]:
    """``name=v1,v2,...`` as (name, [values])."""
    name, sep, values = text.partition("=")
    items = values.split(",")
    if not sep or not name.strip() or any(not item.strip() for item in items):
        raise ReplayError(f"--sweep expects name=v1,v2,..., got {text!r}")
    return name.strip(), [parse_value(item) for item in items]


@dataclass(frozen=True)
class Configuration:
    """One point of the sweep: its name (``temperature=0.2,max_new_tokens=64``) and values."""

    name: str
    params: Mapping[str, Any]


def configurations(sweeps: Sequence[tuple[str, list[Any]]]) -> list[Configuration]:
    """The cartesian product of the sweeps; one configuration named ``default`` without any."""
    names = [name for name, _ in sweeps]
    if len(set(names)) != len(names):
        raise ReplayError(f"--sweep names a parameter twice: {', '.join(names)}")
    if not sweeps:
        return [Configuration("default", {})]
    found = []
    for values in itertools.product(*(values for _, values in sweeps)):
        params = dict(zip(names, values, strict=True))
        name = ",".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}"
                        for k, v in params.items())
        found.append(Configuration(name, params))
    return found


@dataclass(frozen=True)
class ReplayPlan:
    """The whole run: dataset, the two models, configurations, trials and generation args."""

    dataset: Dataset
    base: ModelSpec
    candidate: ModelSpec
    configurations: tuple[Configuration, ...]
    trials: int = 1
    seed: int = 0
    fixed: Mapping[str, Any] | None = None
    batch_size: int = DEFAULT_BATCH_SIZE

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise ReplayError(f"--trials must be at least 1, got {self.trials}")
        if self.batch_size < 1:
            raise ReplayError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.base.label == self.candidate.label:
            raise ReplayError(f"base and candidate are both named {self.base.label!r}: "
                              "give --base-name/--candidate-name")

    @property
    def models(self) -> tuple[ModelSpec, ModelSpec]:
        return self.base, self.candidate

    @cached_property
    def run_id(self) -> str:
        """Digest of what the answers depend on: dataset, checkpoints and their names, fixed
        generation arguments, seed."""
        parts = [self.dataset.digest, self.base.fingerprint(), self.candidate.fingerprint(),
                 self.base.label, self.candidate.label, _canonical(self.fixed or {}),
                 str(self.seed)]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:20]

    def generation_kwargs(self, configuration: Configuration) -> dict[str, Any]:
        """``generate()`` arguments: defaults, ``--gen``, the configuration; sampling is on with
        several trials or a sampling parameter, unless do_sample is given."""
        kwargs = {"max_new_tokens": DEFAULT_MAX_NEW_TOKENS, **(self.fixed or {}),
                  **configuration.params}
        if "do_sample" not in kwargs:
            kwargs["do_sample"] = self.trials > 1 or any(k in kwargs for k in SAMPLING_ARGUMENTS)
        return kwargs

    def trial_seed(self, trial: int) -> int:
        return self.seed + trial

    def pair_id(self, configuration: Configuration, trial: int, key: str) -> str:
        """Shared by the base and candidate answers to one prompt x trial x configuration,
        written ``PROMPT.REST``: the comparison treats the pairs of one prompt (its trials and
        sweep values) as one cluster of correlated pairs (``inputs.CLUSTER_KEY``)."""
        text = f"{self.run_id}|{_canonical(self.generation_kwargs(configuration))}|{trial}|{key}"
        prompt = hashlib.sha256(f"{self.run_id}|{key}".encode()).hexdigest()[:16]
        return f"{prompt}.{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


# --- resumability ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Answer:
    """One exported answer: which unit it is and the span that carries it."""

    variant: str
    model: str
    configuration: str
    trial: int
    seed: int
    key: str
    pair_id: str
    trace_id: str
    span_id: str
    time_ns: int

    @property
    def unit(self) -> tuple[str, str]:
        """One arm's answer for one pair (the pair id digests configuration, trial and key)."""
        return (self.variant, self.pair_id)


class Manifest:
    """The run's JSONL state file: one line per answer whose span was exported."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def for_run(cls, state_dir: Path, run_id: str) -> Manifest:
        return cls(state_dir / "replay" / f"{run_id}.jsonl")

    def load(self) -> dict[tuple[str, str], Answer]:
        """The answers recorded so far; a line cut short by a crash is ignored."""
        found: dict[tuple[str, str], Answer] = {}
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return found
        for line in lines:
            try:
                answer = Answer(**json.loads(line))
            except (ValueError, TypeError):
                continue
            found[answer.unit] = answer
        return found

    def append(self, answers: Sequence[Answer]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            for answer in answers:
                handle.write(json.dumps(asdict(answer)) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def rewrite(self, answers: Sequence[Answer]) -> None:
        """Keep only ``answers`` (drops answers found missing from the store)."""
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text("".join(json.dumps(asdict(a)) + "\n" for a in answers),
                             encoding="utf-8")
        temporary.replace(self.path)


# --- tracing --------------------------------------------------------------------------------

@contextmanager
def traced(endpoint: str, api_key: str | None = None) -> Iterator[None]:
    """Export every span to the collector at ``endpoint`` and trace ``generate()`` meanwhile."""
    ct.init(service_name=REPLAY_SERVICE, endpoint=endpoint, api_key=api_key, sample_rate=1.0,
            capture_content=True)
    ct.instrument_transformers()
    try:
        yield
    finally:
        ct.uninstrument_transformers()
        ct.force_flush()
        ct.shutdown()


def _batch_scope(plan: ReplayPlan, model: LocalModel, configuration: Configuration, trial: int,
                 kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """What every span of one batch carries: arm, configuration, dataset, seed, and the
    sampling arguments (given, else the model's generation config)."""
    scope = {A.CANARY_VARIANT: model.spec.variant, A.CANARY_ROLE: A.ROLE_PRIMARY,
             A.CANARY_ROUTE: plan.dataset.name, A.CANARY_COHORT: configuration.name,
             A.GEN_AI_REQUEST_SEED: plan.trial_seed(trial)}
    defaults = model.model.generation_config
    for argument, key in REQUEST_ATTRIBUTES.items():
        value = kwargs.get(argument, getattr(defaults, argument, None))
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            scope[key] = value
    return scope


def _start_answer(model: LocalModel, example: Example, pair_id: str) -> LlmCall:
    label = model.spec.label
    call = start_call(f"{model.operation} {label}", start_attributes(
        label, model.operation, provider=PROVIDER, attributes={A.CANARY_PAIR_ID: pair_id}))
    call.set_input([dict(m) for m in example.messages])
    return call


def _finish_answer(call: LlmCall, example: Example, generation: Generation) -> None:
    call.set_output(generation.text, input_tokens=generation.input_tokens,
                    output_tokens=generation.output_tokens,
                    finish_reasons=[generation.finish_reason])
    call.activate()
    try:
        ct.expect(**example.expectations)
    finally:
        call.deactivate()
        call.end()


def answer_batch(plan: ReplayPlan, model: LocalModel, configuration: Configuration, trial: int,
                 examples: Sequence[Example]) -> list[Answer]:
    """Generate one batch under its spans; returns the answers (spans ended, not yet flushed)."""
    kwargs = plan.generation_kwargs(configuration)
    spec = model.spec
    pair_ids = [plan.pair_id(configuration, trial, e.key) for e in examples]
    with get_tracer().start_as_current_span(f"replay {plan.dataset.name}"), \
            scoped_attributes(_batch_scope(plan, model, configuration, trial, kwargs)):
        calls = [_start_answer(model, e, p) for e, p in zip(examples, pair_ids, strict=True)]
        try:
            generations = model.generate(examples, kwargs, plan.trial_seed(trial))
        except BaseException as exc:
            for call in calls:
                call.record_error(exc)
                call.end()
            raise
        answers = []
        for call, example, generation, pair_id in zip(calls, examples, generations, pair_ids,
                                                      strict=True):
            _finish_answer(call, example, generation)
            context = call.span.get_span_context()
            answers.append(Answer(
                spec.variant, spec.label, configuration.name, trial, plan.trial_seed(trial),
                example.key, pair_id, format(context.trace_id, "032x"),
                format(context.span_id, "016x"), call.span.start_time or 0))
    return answers


# --- the run --------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReplayResult:
    """Every answer the plan asks for (new and resumed) and how many were generated now."""

    plan: ReplayPlan
    answers: list[Answer]
    generated: int
    resumed: int


def pending_work(plan: ReplayPlan, spec: ModelSpec, done: Mapping[Any, Answer]
                 ) -> list[tuple[Configuration, int, list[Example]]]:
    """(configuration, trial, examples not answered yet) for one model."""
    work = []
    for configuration in plan.configurations:
        for trial in range(plan.trials):
            todo = [e for e in plan.dataset.examples
                    if (spec.variant, plan.pair_id(configuration, trial, e.key))
                    not in done]
            if todo:
                work.append((configuration, trial, todo))
    return work


def requested(plan: ReplayPlan, done: Mapping[Any, Answer]) -> list[Answer]:
    """The plan's answers found in ``done``, in plan order."""
    found = []
    for spec in plan.models:
        for configuration in plan.configurations:
            for trial in range(plan.trials):
                for example in plan.dataset.examples:
                    unit = (spec.variant, plan.pair_id(configuration, trial, example.key))
                    if unit in done:
                        found.append(done[unit])
    return found


def run_replay(plan: ReplayPlan, manifest: Manifest, *, device: str = "cpu",
               progress: Progress | None = None) -> ReplayResult:
    """Answer every unit of ``plan`` not in ``manifest``; call inside ``traced(...)``."""
    done = manifest.load()
    resumed = len(requested(plan, done))
    generated = 0
    for spec in plan.models:
        work = pending_work(plan, spec, done)
        if not work:
            continue
        model = LocalModel(spec, device)
        for configuration, trial, examples in work:
            for start in range(0, len(examples), plan.batch_size):
                answers = answer_batch(plan, model, configuration, trial,
                                       examples[start:start + plan.batch_size])
                if not ct.force_flush():
                    raise ReplayError("spans could not be exported to the collector in time")
                manifest.append(answers)
                done.update((a.unit, a) for a in answers)
                generated += len(answers)
                if progress is not None:
                    progress(len(answers))
        del model
    return ReplayResult(plan, requested(plan, done), generated, resumed)

