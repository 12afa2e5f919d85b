"""Run an ASGI app under a real uvicorn server on 127.0.0.1 and a free port, in a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx2 as httpx  # the HTTP client the openai package brings


@contextmanager
def running(app: Any, timeout: float = 30.0) -> Iterator[str]:
    """Yield the server's base URL (http://127.0.0.1:PORT); stop it on exit."""
    import uvicorn

    from rag.llm.llama_server import free_port

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                            access_log=False, lifespan="on")  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start on {url}")
        time.sleep(0.05)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(10)


def get_json(url: str, **kwargs: Any) -> Any:
    response = httpx.get(url, timeout=30, **kwargs)
    response.raise_for_status()
    return response.json()
