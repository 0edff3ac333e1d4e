"""ct.Canary over real (tiny, random) transformers models: generate() spans nest under the arms."""

from __future__ import annotations

import pytest

import canarytrace as ct
from canarytrace import attributes as A
from canarytrace.canary import Canary
from tests.support.tiny_models import build_causal_lm

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

NEW_TOKENS = 4


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """Two tiny GPT-2s (different seeds) with their tokenizers, built offline."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("canary-models")
    loaded = {}
    for name, seed in (("tiny-base", 0), ("tiny-candidate", 1)):
        directory = build_causal_lm(root / name, seed=seed)
        loaded[name] = (transformers.AutoModelForCausalLM.from_pretrained(directory).eval(),
                        transformers.AutoTokenizer.from_pretrained(directory))
    return loaded


@pytest.fixture
def exporter(traced):
    ct.instrument_transformers()
    yield traced.exporter
    ct.uninstrument_transformers()


def answerer(model, tokenizer):
    """A plain (uninstrumented) inference function around ``model.generate``."""
    def answer(prompt: str) -> str:
        inputs = tokenizer(prompt, return_tensors="pt")
        with torch.no_grad():
            output = model.generate(**inputs, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                                    do_sample=False, pad_token_id=tokenizer.pad_token_id)
        return tokenizer.decode(output[0, inputs["input_ids"].shape[1]:])

    return answer


def spans_of(exporter, operation):
    return [s for s in exporter.get_finished_spans()
            if s.attributes.get(A.GEN_AI_OPERATION_NAME) == operation]


def test_generate_spans_nest_under_each_arm_and_carry_the_pair(exporter, tiny_models):
    base, candidate = (answerer(*tiny_models[name]) for name in ("tiny-base", "tiny-candidate"))
    prompt = "what is the capital of france"
    expected = base(prompt)
    exporter.clear()
    with Canary(base, candidate, base_model="tiny-base", candidate_model="tiny-candidate",
                mirror_rate=1.0, route="geo", cohort="free") as canary:
        answer = canary(prompt)
    assert answer == expected

    arms = {s.attributes[A.CANARY_ROLE]: s for s in spans_of(exporter, A.OPERATION_CHAT)}
    generates = spans_of(exporter, A.OPERATION_TEXT_COMPLETION)
    assert set(arms) == {A.ROLE_PRIMARY, A.ROLE_SHADOW} and len(generates) == 2
    pair_id = arms[A.ROLE_PRIMARY].attributes[A.CANARY_PAIR_ID]
    prompt_tokens = len(tiny_models["tiny-base"][1](prompt)["input_ids"])
    for generate in generates:
        (arm,) = [a for a in arms.values() if a.context.span_id == generate.parent.span_id]
        assert generate.context.trace_id == arm.context.trace_id
        for key in (A.CANARY_VARIANT, A.CANARY_ROLE, A.CANARY_ROUTE, A.CANARY_COHORT):
            assert generate.attributes[key] == arm.attributes[key]
        assert generate.attributes[A.CANARY_PAIR_ID] == pair_id
        assert generate.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == prompt_tokens
        assert generate.attributes[A.GEN_AI_USAGE_OUTPUT_TOKENS] == NEW_TOKENS
        model_dir = generate.attributes[A.GEN_AI_REQUEST_MODEL]
        assert model_dir.endswith(arm.attributes[A.GEN_AI_REQUEST_MODEL])
    assert arms[A.ROLE_SHADOW].attributes[A.CANARY_VARIANT] == A.VARIANT_CANDIDATE
    assert arms[A.ROLE_SHADOW].attributes[A.GEN_AI_OUTPUT_MESSAGES] != \
        arms[A.ROLE_PRIMARY].attributes[A.GEN_AI_OUTPUT_MESSAGES]


def test_llm_decorated_arm_around_generate_is_the_parent_of_its_generate_span(
        exporter, tiny_models):
    plain = answerer(*tiny_models["tiny-candidate"])
    candidate = ct.llm(model="tiny-candidate")(plain)
    base = answerer(*tiny_models["tiny-base"])
    expected = plain("hello world")
    exporter.clear()
    with Canary(base, candidate, base_model="tiny-base", canary_rate=1.0) as canary:
        assert canary("hello world") == expected
    (decorated,) = spans_of(exporter, A.OPERATION_CHAT)
    (generate,) = spans_of(exporter, A.OPERATION_TEXT_COMPLETION)
    assert generate.parent.span_id == decorated.context.span_id
    assert decorated.attributes[A.GEN_AI_REQUEST_MODEL] == "tiny-candidate"
    for span in (decorated, generate):
        assert span.attributes[A.CANARY_VARIANT] == A.VARIANT_CANDIDATE
        assert span.attributes[A.CANARY_ROLE] == A.ROLE_PRIMARY
