"""Judge backends for real: a tiny local causal LM, and an OpenAI-compatible HTTP server."""

import socket

import pytest

from canarytrace import attributes as A
from canarytrace.evaluators.judges import (
    InstructionJudge,
    JudgeBackend,
    JudgeError,
    JudgeSettings,
    LocalTransformersJudge,
    OpenAICompatibleJudge,
    parse_pass_fail,
    parse_preference,
)
from canarytrace.evaluators.task_completion import TaskCompletion
from tests.evaluators.judge_server import API_KEY, judge_server
from tests.evaluators.span_builders import llm_span
from tests.support.tiny_models import build_causal_lm

CHAT = [{"role": "system", "content": "Be strict."},
        {"role": "user", "content": "Is 2 + 2 = 4? Answer PASS or FAIL."}]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Model directories: a random chat model, one without a chat template, forced verdicts."""
    root = tmp_path_factory.mktemp("judges")
    return {
        "random": build_causal_lm(root / "random"),
        "no_template": build_causal_lm(root / "no_template", chat_template=None),
        "pass": build_causal_lm(root / "pass", forced_text="VERDICT: PASS"),
        "fail": build_causal_lm(root / "fail", forced_text="VERDICT: FAIL"),
    }


@pytest.fixture(scope="module")
def server():
    with judge_server() as running:
        yield running


def task_span(answer="I have done it.", task="Archive the ticket."):
    return llm_span(answer, question=task, expect={A.CANARY_TASK: task})


# --- verdict parsing -------------------------------------------------------------------

@pytest.mark.parametrize("reply, verdict", [
    ("The answer is right.\nVERDICT: PASS", "pass"),
    ("verdict: fail", "fail"),
    ("Verdict: **PASS**", "pass"),
    ("First VERDICT: FAIL ... on reflection VERDICT: PASS", "pass"),
    ("It passes, I think.", None),
    ("", None),
])
def test_pass_fail_parser(reply, verdict):
    assert parse_pass_fail(reply) == verdict


@pytest.mark.parametrize("reply, verdict", [
    ("[[A]]", "A"), ("B is better: [[B]]", "B"), ("[[ C ]]", "C"), ("[[A]] no, [[B]]", "B"),
    ("A is better", None), ("[A]", None),
])
def test_preference_parser(reply, verdict):
    assert parse_preference(reply) == verdict


# --- local transformers judge ------------------------------------------------------------

def test_local_judge_renders_the_tokenizers_chat_template(models):
    judge = LocalTransformersJudge(models["random"])
    assert judge.prompt_for(CHAT) == (
        "<|system|>\nBe strict.<|end|>\n<|user|>\nIs 2 + 2 = 4? Answer PASS or FAIL.<|end|>\n"
        "<|assistant|>\n")


def test_local_judge_folds_the_system_turn_into_the_user_turn_when_the_template_refuses_it(
        tmp_path):
    no_system = ("{% for message in messages %}{% if message['role'] == 'system' %}"
                 "{{ raise_exception('System role not supported') }}{% endif %}"
                 "<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")
    judge = LocalTransformersJudge(build_causal_lm(tmp_path, chat_template=no_system))
    assert judge.prompt_for(CHAT) == (
        "<|user|>\nBe strict.\n\nIs 2 + 2 = 4? Answer PASS or FAIL.<|end|>\n<|assistant|>\n")


def test_local_judge_without_a_chat_template_writes_role_lines(models):
    judge = LocalTransformersJudge(models["no_template"])
    assert judge.prompt_for(CHAT) == (
        "system: Be strict.\nuser: Is 2 + 2 = 4? Answer PASS or FAIL.\nassistant:")
    assert isinstance(judge.complete(CHAT, max_tokens=4), str)


def test_local_judge_greedy_decoding_is_deterministic(models):
    first = LocalTransformersJudge(models["random"]).complete(CHAT, max_tokens=12)
    second = LocalTransformersJudge(models["random"]).complete(CHAT, max_tokens=12)
    assert first == second and first.strip()
    other = LocalTransformersJudge(models["random"]).complete(
        [{"role": "user", "content": "Something else entirely, longer than before."}], 12)
    assert isinstance(other, str)


def test_local_judge_random_model_reply_is_unparsed_not_a_verdict(models):
    judge = LocalTransformersJudge(models["random"])
    reply = judge.complete(CHAT, max_tokens=16)
    assert parse_pass_fail(reply) is None
    result = TaskCompletion(judge, max_tokens=16).evaluate(task_span())
    assert (result.passed, result.score, result.label) == (None, None, "unparsed")
    assert result.details["judge_reply"] == TaskCompletion(judge, max_tokens=16).evaluate(
        task_span()).details["judge_reply"]
    assert "VERDICT" in result.reason


@pytest.mark.parametrize("model, passed, label", [("pass", True, "completed"),
                                                  ("fail", False, "not_completed")])
def test_local_judge_verdict_drives_task_completion(models, model, passed, label):
    judge = LocalTransformersJudge(models[model])
    assert isinstance(judge, JudgeBackend)
    result = TaskCompletion(judge, max_tokens=3).evaluate(task_span())
    assert (result.passed, result.label) == (passed, label)
    assert result.details["judge_reply"] == f"VERDICT: {model.upper()}" * 3


def test_local_judge_batches_and_keeps_order(models):
    judges = {name: LocalTransformersJudge(models[name], batch_size=2) for name in ("pass",
                                                                                     "random")}
    chats = [CHAT, [{"role": "user", "content": "short"}],
             [{"role": "user", "content": "a much longer question " * 5}]]
    assert judges["pass"].complete_batch(chats, 2) == ["VERDICT: PASS" * 2] * 3
    batched = judges["random"].complete_batch(chats, 6)
    assert len(batched) == 3 and batched[0] == judges["random"].complete(CHAT, 6)


def test_instruction_judge_adapter(models):
    assert InstructionJudge(LocalTransformersJudge(models["pass"]), max_tokens=2)(
        "Answer in French.", "Bonjour") is True
    assert InstructionJudge(LocalTransformersJudge(models["fail"]), max_tokens=2)(
        "Answer in French.", "Hello") is False
    with pytest.raises(JudgeError, match="no VERDICT"):
        InstructionJudge(LocalTransformersJudge(models["random"]), max_tokens=8)("x", "y")


# --- OpenAI-compatible judge ---------------------------------------------------------------

def test_http_judge_posts_a_chat_completion_and_returns_its_text(server):
    judge = OpenAICompatibleJudge(server.base_url + "/", "grader", api_key=API_KEY)
    reply = judge.complete([{"role": "user", "content": "Answer to grade:\nAll done."}], 64)
    assert reply == "It is finished.\nVERDICT: PASS"
    request = server.requests[-1]
    assert request["path"] == "/v1/chat/completions"
    assert request["authorization"] == f"Bearer {API_KEY}"
    assert request["body"] == {"model": "grader", "max_tokens": 64, "temperature": 0.0,
                               "messages": [{"role": "user",
                                             "content": "Answer to grade:\nAll done."}]}


def test_http_judge_without_api_key_sends_no_authorization(server):
    OpenAICompatibleJudge(server.base_url, "grader").complete(CHAT)
    assert server.requests[-1]["authorization"] is None


@pytest.mark.parametrize("model, api_key, message", [
    ("grader", "wrong", "HTTP 401: invalid api key"),
    ("overloaded", None, "HTTP 500: model overloaded"),
    ("broken", None, "without choices[0].message.content"),
    ("empty-choices", None, "without choices[0].message.content"),
    ("null-content", None, "no text content"),
])
def test_http_judge_bad_responses_raise_one_clear_error(server, model, api_key, message):
    judge = OpenAICompatibleJudge(server.base_url, model, api_key=api_key)
    with pytest.raises(JudgeError, match=message.replace("[", r"\[").replace("]", r"\]")):
        judge.complete(CHAT)


def test_http_judge_times_out(server):
    judge = OpenAICompatibleJudge(server.base_url, "slow", timeout_s=0.3)
    with pytest.raises(JudgeError, match="timed out after 0.3s"):
        judge.complete(CHAT)


def test_http_judge_unreachable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    judge = OpenAICompatibleJudge(f"http://127.0.0.1:{port}/v1", "grader", timeout_s=2)
    with pytest.raises(JudgeError, match="unreachable"):
        judge.complete(CHAT)


def test_task_completion_with_http_judge_in_a_batch(server):
    evaluator = TaskCompletion(OpenAICompatibleJudge(server.base_url, "grader"))
    spans = [task_span("I have done it."), task_span("I could not find the ticket."),
             llm_span("done", question="Close it.",
                      expect={A.CANARY_EXPECT_REFERENCE: "The ticket is closed."})]
    results = evaluator.evaluate_batch(spans)
    assert [(r.label, r.passed) for r in results] == [
        ("completed", True), ("not_completed", False), ("completed", True)]
    # The three chats went out concurrently: in any order.
    chats = [request["body"]["messages"] for request in server.requests[-3:]]
    assert any("Reference answer:\nThe ticket is closed." in chat[-1]["content"]
               for chat in chats)
    assert all("Rubric:" in chat[0]["content"] for chat in chats)


@pytest.mark.parametrize("model, label", [("chatty", "unparsed"), ("broken", "judge_error")])
def test_task_completion_never_guesses_a_verdict(server, model, label):
    evaluator = TaskCompletion(OpenAICompatibleJudge(server.base_url, model))
    result = evaluator.evaluate(task_span())
    assert (result.passed, result.score, result.label) == (None, None, label)


def test_judge_settings_from_env(models):
    assert JudgeSettings.from_env({}).backend() is None
    http = JudgeSettings.from_env({"CANARYTRACE_JUDGE_URL": "http://judge:8000/v1",
                                   "CANARYTRACE_JUDGE_MODEL": "qwen", "CANARYTRACE_JUDGE_API_KEY":
                                   "k", "CANARYTRACE_JUDGE_TIMEOUT_S": "5"}).backend()
    assert isinstance(http, OpenAICompatibleJudge)
    assert (http.url, http.model, http.timeout_s) == ("http://judge:8000/v1/chat/completions",
                                                     "qwen", 5.0)
    local = JudgeSettings.from_env({"CANARYTRACE_JUDGE_MODEL_PATH": str(models["pass"])})
    assert isinstance(local.backend(), LocalTransformersJudge)
    with pytest.raises(ValueError, match="CANARYTRACE_JUDGE_MODEL"):
        JudgeSettings.from_env({"CANARYTRACE_JUDGE_URL": "http://judge"}).backend()
