"""A real `python -m llama_cpp.server` on a free local port: for tests of the remote backends
and for side-by-side benchmarks (evals/bench_remote.py).

Example:
    >>> with LlamaServer(resolve_model(preset="tiny"), api_key="k") as server:  # doctest: +SKIP
    ...     OpenAI(base_url=server.url, api_key="k").models.list()

The server loads the model before it listens, so once `start()` returns (its `GET /v1/models`
answered 200) it is ready to answer. Its stdout and stderr go to a temporary file, never a
pipe (llama.cpp logs a lot; a full pipe would block it), shown in the error when it fails.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

HOST = "127.0.0.1"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
# Server settings pydantic-settings would read from the environment (case-insensitively) and
# uvicorn's HOST/PORT overrides; the subprocess gets none of them, so only our flags count.
_ENV_OVERRIDES = {"config_file", "host", "port"}


class LlamaServerError(RuntimeError):
    """The server exited or did not answer in time; the message ends with its log tail."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (bound to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Return True if nothing listens on `port` (a connection to it is refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        return s.connect_ex((HOST, port)) != 0


class LlamaServer:
    """Run llama-cpp-python's OpenAI-compatible server on a GGUF file, as a context manager.

    `url` is the OpenAI base URL (`http://127.0.0.1:PORT/v1`); `root` the server root, where
    llama-cpp-python's non-OpenAI routes live (`{root}/extras/tokenize`). `logits_all` must be
    True for `logprobs` (the server's own default is True; here it is off unless asked for).
    """

    def __init__(
        self,
        model_path: str | Path,
        *,
        n_ctx: int = 2048,
        logits_all: bool = False,
        api_key: str | None = None,
        extra_args: Sequence[str] = (),
        start_timeout: float = START_TIMEOUT_S,
    ) -> None:
        self.model_path = Path(model_path)
        self.n_ctx = n_ctx
        self.logits_all = logits_all
        self.api_key = api_key
        self.extra_args = tuple(extra_args)
        self.start_timeout = start_timeout
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def root(self) -> str:
        """The server root, e.g. `http://127.0.0.1:8123`."""
        return f"http://{HOST}:{self.port}"

    @property
    def url(self) -> str:
        """The OpenAI-compatible base URL (`{root}/v1`), for `OpenAI(base_url=...)`."""
        return f"{self.root}/v1"

    @property
    def process(self) -> subprocess.Popen[bytes]:
        """The running server process; raises if it was never started."""
        if self._process is None:
            raise LlamaServerError("the server is not started; call start() or use `with`")
        return self._process

    @property
    def headers(self) -> dict[str, str]:
        """The Authorization header the server expects, if it has an API key."""
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def command(self) -> list[str]:
        """The command line that starts the server (on `self.port`)."""
        cmd = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(self.model_path),
            "--host", HOST, "--port", str(self.port),
            "--n_ctx", str(self.n_ctx),
            "--n_threads", "2", "--n_threads_batch", "2",
            "--logits_all", "true" if self.logits_all else "false",
        ]  # fmt: skip
        if self.api_key is not None:
            cmd += ["--api_key", self.api_key]
        return cmd + list(self.extra_args)

    def start(self) -> LlamaServer:
        """Start the server and wait (bounded) until `GET /v1/models` answers 200."""
        if self._process is not None:
            raise LlamaServerError("the server is already started")
        self.port = free_port()
        self._log = tempfile.TemporaryFile(prefix="llama-server-")  # noqa: SIM115 (closed in stop)
        self._process = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=_server_env(),
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        request = urllib.request.Request(f"{self.url}/models", headers=self.headers)
        last = "no answer yet"
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise LlamaServerError(
                    f"llama_cpp.server exited with code {code} before answering:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(request, timeout=2.0) as response:
                    if response.status == 200:
                        return
                    last = f"HTTP {response.status}"
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
            except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
                last = str(exc)
            time.sleep(0.1)
        raise LlamaServerError(
            f"llama_cpp.server on port {self.port} did not answer GET /v1/models with 200 "
            f"within {self.start_timeout:.0f} s (last: {last}):\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 30) -> str:
        """Return the last `lines` lines the server wrote to stdout and stderr."""
        if self._log is None or self._log.closed:
            return "(no log)"
        self._log.flush()
        self._log.seek(0)
        text = self._log.read().decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL the server at once (to test a server that dies mid-answer)."""
        process = self.process
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait()

    def stop(self) -> None:
        """Terminate the server, kill it if it is still running after a timeout; idempotent."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _server_env() -> dict[str, str]:
    """This process's environment without variables the server would take as settings."""
    from llama_cpp.server.settings import ConfigFileSettings, Settings

    names = _ENV_OVERRIDES | set(Settings.model_fields) | set(ConfigFileSettings.model_fields)
    return {k: v for k, v in os.environ.items() if k.lower() not in names}
