"""/health reports each model version's breaker, and an open one does not fail the check."""

from __future__ import annotations

import httpx

from imgproxy_py.monitoring import BreakerPolicy
from imgproxy_py.server.app import create_app
from tests.conftest import make_settings


async def test_health_lists_models_and_stays_up_while_one_falls_back() -> None:
    app = create_app(make_settings(IMGPROXY_PROMETHEUS_BIND="127.0.0.1:9"))
    async with app.router.lifespan_context(app):
        monitor = app.state.models.monitor("faces", "v2", BreakerPolicy(consecutive_errors=1, cooldown=60))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            healthy = await client.get("/health")
            assert healthy.status_code == 200 and "model faces/v2: ok" in healthy.text

            def broken() -> int:
                raise RuntimeError("detector down")

            assert monitor.call(broken, lambda: 0) == 0
            degraded = await client.get("/health")
        assert degraded.status_code == 200
        assert "model faces/v2: open (1 errors in a row), fallback in use, retry in 60 s" in degraded.text
        registry = app.state.metrics.registry
        assert registry.get_sample_value("model_circuit_open", {"model": "faces", "version": "v2"}) == 1
