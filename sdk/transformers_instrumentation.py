"""Hugging Face transformers: spans for ``model.generate()`` and text-generation pipelines.

``instrument_transformers()`` patches ``GenerationMixin.generate`` and
``TextGenerationPipeline.__call__``; ``uninstrument_transformers()`` puts the originals back.
A ``generate`` span (``text_completion {model}``) counts the prompt's tokens (attention mask)
and the new tokens (up to the first end-of-sequence, without padding) summed over the batch,
and records the sampling parameters. A pipeline call is one span with the prompt, the
decoded answer, and the counts of the ``generate`` calls it made. transformers and torch
are imported only here, when instrumenting.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from canarytrace import attributes as A
from canarytrace import messages
from canarytrace._safety import log_once
from canarytrace.calls import LlmCall, span_name, start_attributes, start_call
from canarytrace.responses import parse_response

PROVIDER = "transformers"
ModelName = str | Callable[[Any], str] | None

_SAMPLING = (("temperature", A.GEN_AI_REQUEST_TEMPERATURE), ("top_p", A.GEN_AI_REQUEST_TOP_P),
             ("top_k", A.GEN_AI_REQUEST_TOP_K), ("max_new_tokens", A.GEN_AI_REQUEST_MAX_TOKENS))


@dataclass
class _Usage:
    """Token counts a pipeline call gathers from the ``generate`` calls it makes."""

    call: LlmCall
    input_tokens: int = 0
    output_tokens: int = 0
    finish_reasons: list[str] = field(default_factory=list)


_pipeline_usage: contextvars.ContextVar[_Usage | None] = contextvars.ContextVar(
    "canarytrace_pipeline_usage", default=None)


class _Patches:
    """The originals replaced by ``instrument_transformers``, for ``uninstrument``."""

    def __init__(self) -> None:
        self.originals: list[tuple[type, str, Any]] = []
        self.model_name: ModelName = None


_patches = _Patches()


def instrument_transformers(model_name: ModelName = None) -> None:
    """Trace ``generate()`` and text-generation pipelines.

    ``model_name`` (a label, or a function of the model) replaces the model's
    ``config.name_or_path`` as ``gen_ai.request.model``. Calling it again updates the label.
    """
    try:
        from transformers import GenerationMixin, TextGenerationPipeline
    except ImportError as exc:
        raise ImportError("instrument_transformers needs transformers (and torch): "
                          "pip install transformers torch") from exc

    _patches.model_name = model_name
    if _patches.originals:
        return
    for owner, attribute, make in ((GenerationMixin, "generate", _traced_generate),
                                   (TextGenerationPipeline, "__call__", _traced_pipeline)):
        original = owner.__dict__[attribute]
        _patches.originals.append((owner, attribute, original))
        setattr(owner, attribute, make(original))


def uninstrument_transformers() -> None:
    """Restore the methods ``instrument_transformers`` replaced."""
    while _patches.originals:
        owner, attribute, original = _patches.originals.pop()
        setattr(owner, attribute, original)


def model_name_of(model: Any) -> str | None:
    """The label given to ``instrument_transformers``, else the model's ``name_or_path``."""
    label = _patches.model_name
    if callable(label):
        return label(model)
    if label:
        return label
    config = getattr(model, "config", None)
    name = getattr(config, "name_or_path", None) or getattr(config, "_name_or_path", None)
    return name or type(model).__name__


# --- generate() ---------------------------------------------------------------------------

def _traced_generate(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def generate(self: Any, *args: Any, **kwargs: Any) -> Any:
        usage = _pipeline_usage.get()
        if usage is not None:  # inside a traced pipeline call: its span gets the counts
            output = original(self, *args, **kwargs)
            _add_to_pipeline(usage, self, args, kwargs, output)
            return output
        call = _start_generate(self, kwargs)
        if call is None:
            return original(self, *args, **kwargs)
        call.activate()
        try:
            output = original(self, *args, **kwargs)
        except BaseException as exc:
            call.deactivate()
            call.record_error(exc)
            call.end()
            raise
        call.deactivate()
        _finish_generate(call, self, args, kwargs, output)
        return output

    return generate


def _start_generate(model: Any, kwargs: dict[str, Any]) -> LlmCall | None:
    try:
        name = model_name_of(model)
        attributes = start_attributes(name, A.OPERATION_TEXT_COMPLETION, provider=PROVIDER)
        attributes.update(_sampling_attributes(model, kwargs))
        return start_call(span_name(A.OPERATION_TEXT_COMPLETION, name), attributes)
    except Exception as exc:  # noqa: BLE001 - telemetry never raises
        log_once("could not start generate span", exc)
        return None


def _sampling_attributes(model: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """temperature, top_p, top_k, max_new_tokens: from the call, else the generation config."""
    configs = [kwargs.get("generation_config"), getattr(model, "generation_config", None)]
    found = {}
    for parameter, key in _SAMPLING:
        value = kwargs.get(parameter)
        for config in configs:
            if value is None and config is not None:
                value = getattr(config, parameter, None)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            found[key] = value
    return found


def _finish_generate(call: LlmCall, model: Any, args: tuple[Any, ...],
                     kwargs: dict[str, Any], output: Any) -> None:
    try:
        if call.recording:
            input_tokens, output_tokens, reasons = _token_counts(model, args, kwargs, output)
            call.set_output(None, input_tokens=input_tokens, output_tokens=output_tokens,
                            finish_reasons=reasons)
    except Exception as exc:  # noqa: BLE001 - telemetry never raises
        log_once("could not count generate tokens", exc)
    call.end()


def _add_to_pipeline(usage: _Usage, model: Any, args: tuple[Any, ...],
                     kwargs: dict[str, Any], output: Any) -> None:
    if not usage.call.recording:
        return
    try:
        input_tokens, output_tokens, reasons = _token_counts(model, args, kwargs, output)
        usage.input_tokens += input_tokens
        usage.output_tokens += output_tokens
        usage.finish_reasons += reasons
        usage.call.span.set_attributes(_sampling_attributes(model, kwargs))
    except Exception as exc:  # noqa: BLE001 - telemetry never raises
        log_once("could not count generate tokens", exc)


def _token_counts(model: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                  output: Any) -> tuple[int, int, list[str]]:
    """(prompt tokens, new tokens, finish reason per row) of one generate call."""
    input_ids = args[0] if args else kwargs.get("inputs", kwargs.get("input_ids"))
    mask = kwargs.get("attention_mask")
    config = kwargs.get("generation_config") or getattr(model, "generation_config", None)
    pad_id = getattr(config, "pad_token_id", None)
    eos_ids = _as_set(getattr(config, "eos_token_id", None))
    if mask is not None:
        input_tokens = int(mask.sum())
    elif input_ids is not None and hasattr(input_ids, "numel"):
        input_tokens = int(input_ids.numel())
    else:
        input_tokens = 0
    sequences = getattr(output, "sequences", output)
    if getattr(getattr(model, "config", None), "is_encoder_decoder", False):
        new_rows = sequences[:, 1:]  # the decoder start token is not generated
    else:
        prompt_length = input_ids.shape[-1] if hasattr(input_ids, "shape") else 0
        new_rows = sequences[:, prompt_length:]
    output_tokens, reasons = 0, []
    for row in new_rows.tolist():
        count, stopped = _generated_length(row, eos_ids, pad_id)
        output_tokens += count
        reasons.append("stop" if stopped else "length")
    return input_tokens, output_tokens, reasons


def _as_set(value: Any) -> frozenset[int]:
    if value is None:
        return frozenset()
    if isinstance(value, int):
        return frozenset({value})
    return frozenset(int(v) for v in value)


def _generated_length(row: list[int], eos_ids: frozenset[int], pad_id: int | None
                      ) -> tuple[int, bool]:
    """Tokens generated in one row: through the first end-of-sequence, else without padding."""
    for index, token in enumerate(row):
        if token in eos_ids:
            return index + 1, True
    length = len(row)
    while pad_id is not None and length and row[length - 1] == pad_id:
        length -= 1
    return length, False


# --- pipelines ----------------------------------------------------------------------------

def _traced_pipeline(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def __call__(self: Any, text_inputs: Any, **kwargs: Any) -> Any:
        call = _start_pipeline(self, text_inputs)
        if call is None:
            return original(self, text_inputs, **kwargs)
        usage = _Usage(call)
        token = _pipeline_usage.set(usage)
        call.activate()
        try:
            result = original(self, text_inputs, **kwargs)
        except BaseException as exc:
            call.record_error(exc)
            raise
        else:
            _record_pipeline_output(usage, text_inputs, result)
        finally:
            call.deactivate()
            _pipeline_usage.reset(token)
            call.end()
        return result

    return __call__


def _is_chat(text_inputs: Any) -> bool:
    if hasattr(text_inputs, "messages"):
        return True
    return isinstance(text_inputs, list) and bool(text_inputs) and isinstance(text_inputs[0], dict)


def _start_pipeline(pipeline: Any, text_inputs: Any) -> LlmCall | None:
    try:
        name = model_name_of(pipeline.model)
        operation = A.OPERATION_CHAT if _is_chat(text_inputs) else A.OPERATION_TEXT_COMPLETION
        attributes = start_attributes(name, operation, provider=PROVIDER)
        call = start_call(span_name(operation, name), attributes)
        prompt = getattr(text_inputs, "messages", text_inputs)
        if isinstance(prompt, (str, list, tuple)):
            call.set_input(prompt)
        return call
    except Exception as exc:  # noqa: BLE001 - telemetry never raises
        log_once("could not start pipeline span", exc)
        return None


def _record_pipeline_output(usage: _Usage, text_inputs: Any, result: Any) -> None:
    try:
        answers = _pipeline_answers(text_inputs, result)
        usage.call.set_output(answers, input_tokens=usage.input_tokens,
                              output_tokens=usage.output_tokens,
                              finish_reasons=usage.finish_reasons)
    except Exception as exc:  # noqa: BLE001 - telemetry never raises
        log_once("could not record pipeline output", exc)


def _pipeline_answers(text_inputs: Any, result: Any) -> list[messages.Message]:
    """The answers as assistant messages, without the prompt the pipeline echoes back."""
    if not isinstance(result, list):
        return []
    rows = [item for row in result for item in (row if isinstance(row, list) else [row])]
    prompts = [text_inputs] if isinstance(text_inputs, str) else list(text_inputs)
    answers: list[messages.Message] = []
    for row in rows:
        generated = row.get("generated_text") if isinstance(row, dict) else None
        if isinstance(generated, str):
            prefix = next((p for p in prompts if isinstance(p, str) and generated.startswith(p)),
                          "")
            generated = generated[len(prefix):]
            answers += parse_response(generated).messages
        elif generated is not None:
            answers += parse_response([row]).messages
    return answers
