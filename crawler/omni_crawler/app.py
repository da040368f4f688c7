"""The HTTP API: `POST /fetch`, `GET /healthz`, `GET /metrics`."""

from __future__ import annotations

import hmac
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from .config import Settings
from .fetcher import Fetcher
from .metrics import Metrics


class FetchRequest(BaseModel):
    """One request in a batch."""

    url: str
    method: str = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    body_b64: str | None = None
    impersonate: str | None = None
    timeout_ms: int | None = Field(default=None, ge=1, le=600_000)


class FetchBatch(BaseModel):
    """The body of `POST /fetch`."""

    requests: list[FetchRequest]


def create_app(settings: Settings) -> FastAPI:
    """The service with these settings."""
    metrics = Metrics()
    fetcher = Fetcher(settings, metrics)

    @asynccontextmanager
    async def lifespan(_app):
        yield
        await fetcher.close()

    app = FastAPI(title="omni-crawler", lifespan=lifespan)
    app.state.fetcher = fetcher
    app.state.metrics = metrics

    def authorize(request: Request) -> None:
        if settings.token is None:
            return
        given = request.headers.get("authorization", "")
        expected = f"Bearer {settings.token}"
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise HTTPException(status_code=401, detail="missing or wrong bearer token",
                                headers={"WWW-Authenticate": "Bearer"})

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    @app.get("/metrics", response_class=PlainTextResponse, dependencies=[Depends(authorize)])
    async def metrics_text():
        return PlainTextResponse(metrics.render(fetcher.pool),
                                 media_type="text/plain; version=0.0.4")

    @app.post("/fetch", dependencies=[Depends(authorize)])
    async def fetch(batch: FetchBatch):
        if len(batch.requests) > settings.max_batch:
            raise HTTPException(status_code=413,
                                detail=f"at most {settings.max_batch} requests per batch")
        responses = await fetcher.fetch_batch([r.model_dump() for r in batch.requests])
        return {"responses": responses}

    return app
