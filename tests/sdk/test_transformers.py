"""ct.instrument_transformers on a real (tiny, random) GPT-2 built from a config: no download."""

from __future__ import annotations

import json

import pytest
from opentelemetry.trace import SpanKind

import canarytrace as ct
from canarytrace import attributes as A
from canarytrace.context import scoped_attributes

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

CHARS = list("abcdefghijklmnopqrstuvwxyz0123456789 .,!?'")
SPECIALS = ["<pad>", "<eos>", "<unk>"]


def build_tokenizer():
    """A character-level tokenizer: one token per character, so lengths are easy to check."""
    from tokenizers import Tokenizer, decoders, models

    vocab = {token: index for index, token in enumerate(SPECIALS + CHARS)}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    backend.decoder = decoders.Fuse()
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("tiny-gpt2")
    tokenizer = build_tokenizer()
    config = transformers.GPT2Config(
        vocab_size=len(tokenizer), n_positions=128, n_embd=32, n_layer=1, n_head=2,
        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id)
    transformers.GPT2LMHeadModel(config).eval().save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def model(model_dir):
    return transformers.AutoModelForCausalLM.from_pretrained(model_dir).eval()


@pytest.fixture(scope="module")
def tokenizer(model_dir):
    return transformers.AutoTokenizer.from_pretrained(model_dir)


@pytest.fixture
def instrumented(traced):
    ct.instrument_transformers()
    yield traced
    ct.uninstrument_transformers()


def generate(model, tokenizer, prompts, **kwargs):
    tokenizer.padding_side = "left"
    batch = tokenizer(prompts, return_tensors="pt", padding=True)
    with torch.no_grad():
        output = model.generate(**batch, do_sample=False, **kwargs)
    return batch, output


def test_generate_span_counts_prompt_and_new_tokens(instrumented, model, tokenizer, model_dir):
    batch, output = generate(model, tokenizer, ["hello there"], max_new_tokens=4,
                             min_new_tokens=4)
    assert output.shape[1] - batch["input_ids"].shape[1] == 4
    span = instrumented.one(f"text_completion {model_dir}")
    assert span.kind is SpanKind.CLIENT
    assert span.attributes[A.GEN_AI_OPERATION_NAME] == "text_completion"
    assert span.attributes[A.GEN_AI_REQUEST_MODEL] == str(model_dir)
    assert span.attributes[A.GEN_AI_PROVIDER_NAME] == "transformers"
    assert span.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == len("hello there")
    assert span.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == batch["input_ids"].shape[1]
    assert span.attributes[A.GEN_AI_USAGE_OUTPUT_TOKENS] == 4
    assert span.attributes[A.GEN_AI_REQUEST_MAX_TOKENS] == 4
    assert span.attributes[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("length",)


def test_batched_generate_sums_rows_without_padding(instrumented, model, tokenizer):
    prompts = ["hi", "a much longer prompt"]
    batch, output = generate(model, tokenizer, prompts, max_new_tokens=3, min_new_tokens=3)
    assert batch["input_ids"].shape == (2, len(prompts[1]))  # the short row is padded
    span = instrumented.llm_spans()[0]
    assert span.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == len("hi") + len(prompts[1])
    assert span.attributes[A.GEN_AI_USAGE_OUTPUT_TOKENS] == 2 * 3
    assert span.attributes[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("length", "length")


def test_generation_stops_at_end_of_sequence(instrumented, model_dir, tokenizer):
    eos_model = transformers.AutoModelForCausalLM.from_pretrained(model_dir).eval()
    with torch.no_grad():  # make every position predict <eos>
        eos_model.lm_head.weight.zero_()
        eos_model.transformer.ln_f.weight.zero_()
        eos_model.transformer.ln_f.bias.fill_(1.0)
        eos_model.lm_head.weight[tokenizer.eos_token_id] = 1.0
    batch, output = generate(eos_model, tokenizer, ["stop now"], max_new_tokens=6)
    assert output.shape[1] - batch["input_ids"].shape[1] == 1
    span = instrumented.llm_spans()[0]
    assert span.attributes[A.GEN_AI_USAGE_OUTPUT_TOKENS] == 1
    assert span.attributes[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)


def test_sampling_parameters_and_label(traced, model, tokenizer):
    ct.instrument_transformers(model_name="tiny-gpt2-candidate")
    try:
        batch = tokenizer(["abc"], return_tensors="pt")
        with torch.no_grad():
            model.generate(**batch, do_sample=True, temperature=0.7, top_p=0.9, top_k=20,
                           max_new_tokens=2)
    finally:
        ct.uninstrument_transformers()
    span = traced.one("text_completion tiny-gpt2-candidate")
    assert span.attributes[A.GEN_AI_REQUEST_MODEL] == "tiny-gpt2-candidate"
    assert span.attributes[A.GEN_AI_REQUEST_TEMPERATURE] == pytest.approx(0.7)
    assert span.attributes[A.GEN_AI_REQUEST_TOP_P] == pytest.approx(0.9)
    assert span.attributes[A.GEN_AI_REQUEST_TOP_K] == 20
    assert span.attributes[A.GEN_AI_REQUEST_MAX_TOKENS] == 2


def test_generate_nests_under_an_llm_span_and_takes_the_scope(instrumented, model, tokenizer):
    @ct.llm(model="support-bot", route="billing")
    def answer(prompt):
        batch, output = generate(model, tokenizer, [prompt], max_new_tokens=3, min_new_tokens=3)
        return tokenizer.decode(output[0, batch["input_ids"].shape[1]:])

    with scoped_attributes({A.CANARY_VARIANT: "candidate", A.CANARY_PAIR_ID: "pair-1"}):
        text = answer("hello")
    outer = instrumented.one("chat support-bot")
    inner = next(s for s in instrumented.llm_spans() if s.name.startswith("text_completion"))
    assert inner.parent.span_id == outer.context.span_id
    assert inner.attributes[A.CANARY_VARIANT] == "candidate"
    assert inner.attributes[A.CANARY_PAIR_ID] == "pair-1"
    assert inner.attributes[A.GEN_AI_USAGE_OUTPUT_TOKENS] == 3
    output = json.loads(outer.attributes[A.GEN_AI_OUTPUT_MESSAGES])
    assert output[0]["parts"][0]["content"] == text


def test_text_generation_pipeline_is_one_span_with_text_and_tokens(instrumented, model,
                                                                   tokenizer, model_dir):
    generator = transformers.pipeline("text-generation", model=model, tokenizer=tokenizer,
                                      device="cpu")
    result = generator("hello", max_new_tokens=4, min_new_tokens=4, do_sample=False)
    generated = result[0]["generated_text"]
    assert generated.startswith("hello")
    spans = instrumented.llm_spans()
    assert len(spans) == 1  # the generate call inside is counted on the pipeline's span
    span = spans[0]
    assert span.name == f"text_completion {model_dir}"
    assert json.loads(span.attributes[A.GEN_AI_INPUT_MESSAGES]) == [
        {"role": "user", "parts": [{"type": "text", "content": "hello"}]}]
    output = json.loads(span.attributes[A.GEN_AI_OUTPUT_MESSAGES])
    assert output == [{"role": "assistant",
                       "parts": [{"type": "text", "content": generated[len("hello"):]}]}]
    assert span.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == len("hello")
    assert span.attributes[A.GEN_AI_USAGE_OUTPUT_TOKENS] == 4
    assert span.attributes[A.GEN_AI_REQUEST_MAX_TOKENS] == 4


def test_uninstrument_restores_the_originals(traced, model, tokenizer):
    original_generate = transformers.GenerationMixin.generate
    original_call = transformers.TextGenerationPipeline.__call__
    ct.instrument_transformers()
    ct.instrument_transformers()  # idempotent
    assert transformers.GenerationMixin.generate is not original_generate
    ct.uninstrument_transformers()
    assert transformers.GenerationMixin.generate is original_generate
    assert transformers.TextGenerationPipeline.__call__ is original_call
    generate(model, tokenizer, ["abc"], max_new_tokens=2)
    assert traced.llm_spans() == []
