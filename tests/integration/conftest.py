"""Fixtures for the integration tests: the embedded model, a real llama.cpp server, an isolated store.

Every network call goes to 127.0.0.1 only; every wait loop is bounded in count and time.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from personae.backends import create_backend
from personae.backends.local import LocalBackend, smollm2_path

N_THREADS = 2
SERVER_START_TIMEOUT_S = 60.0


@pytest.fixture(autouse=True)
def _isolated_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the default store at a per-test file so no test touches ~/.cache."""
    path = tmp_path / "store.sqlite"
    monkeypatch.setenv("PERSONAE_STORE", str(path))
    monkeypatch.delenv("PERSONAE_OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    return path


@pytest.fixture(scope="session")
def gguf_path() -> Path:
    path = smollm2_path()
    if not path.exists():
        pytest.skip(f"embedded model missing at {path}")
    return path


@pytest.fixture(scope="session")
def local_backend(gguf_path: Path) -> Iterator[LocalBackend]:
    """One embedded-model backend for the session (loading it twice only wastes time)."""
    backend = create_backend("local/smollm2-135m", {"n_threads": N_THREADS})
    assert isinstance(backend, LocalBackend)
    yield backend


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _models_answer(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/models", timeout=2.0) as resp:  # noqa: S310 (127.0.0.1 only)
            return resp.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


@pytest.fixture(scope="session")
def llama_server(gguf_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real llama.cpp server (llama-cpp-python's) on a free 127.0.0.1 port; yields its /v1 base URL."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("llama_server") / "server.log"
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf_path), "--host", "127.0.0.1",
           "--port", str(port), "--n_ctx", "2048", "--n_threads", str(N_THREADS)]
    base_url = f"http://127.0.0.1:{port}/v1"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"})
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        for _ in range(int(SERVER_START_TIMEOUT_S / 0.25) + 1):
            if proc.poll() is not None:
                pytest.fail(f"llama.cpp server exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            if _models_answer(base_url):
                break
            if time.monotonic() > deadline:
                pytest.fail(f"llama.cpp server did not answer within {SERVER_START_TIMEOUT_S:g} s:\n"
                            f"{log_path.read_text()[-3000:]}")
            time.sleep(0.25)
        else:
            pytest.fail(f"llama.cpp server did not answer after {SERVER_START_TIMEOUT_S / 0.25:g} polls.")
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
