"""An inference service for mesh-canary tests, run with uvicorn as its own process:

    MESH_MODEL=support-7b-lora CANARYTRACE_VARIANT=candidate CANARYTRACE_ROLE=shadow \\
        python -m uvicorn tests.support.mesh_service:app --port 8001

It uses the SDK as a team would: ``ct.init()`` from the environment, the request-id
middleware, one LLM call per request with an expected JSON Schema. ``reply`` is the model:
the candidate answers the "pro" cohort in prose instead of JSON (a json_validation
regression); the same function serves the in-process ``ct.Canary`` the tests compare with.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

import canarytrace as ct

BASE_MODEL = "support-7b"
CANDIDATE_MODEL = "support-7b-lora"
BROKEN_COHORT = "pro"
ANSWER_SCHEMA = {"type": "object", "required": ["answer"],
                 "properties": {"answer": {"type": "string"}}}


def reply(model: str, request: dict) -> str:
    """The model's answer to ``request`` ({"prompt", "cohort"})."""
    time.sleep(0.002)
    if model == CANDIDATE_MODEL and request["cohort"] == BROKEN_COHORT:
        return f"Sure! Here is what I found about {request['prompt']}."
    return json.dumps({"answer": f"{request['prompt']} is covered by your plan"})


def create_app() -> FastAPI:
    model = os.environ.get("MESH_MODEL", BASE_MODEL)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ct.init()  # service name, endpoint, key, variant and role from CANARYTRACE_*
        yield
        ct.shutdown()

    app = FastAPI(lifespan=lifespan)
    app.add_middleware(ct.RequestIdMiddleware)

    @app.get("/healthz")
    def healthz() -> dict:
        return {"model": model}

    @app.post("/v1/answer")
    def answer(request: dict) -> dict:
        with ct.expect(json_schema=ANSWER_SCHEMA), \
                ct.llm_call(model=model, cohort=request["cohort"]) as call:
            call.set_input(request["prompt"])
            text = reply(model, request)
            call.set_output(text)
        return {"answer": text, "model": model}

    return app


app = create_app()
