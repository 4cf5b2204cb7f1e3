"""API keys never reach the store, the run folder or the terminal; they do reach the server."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx2
import pytest

from personae.api import run_study
from personae.backends.openai import OpenAIBackend, OpenAIOptions
from personae.errors import BackendUnavailableError, PersonaeError
from personae.spec import resolve_spec

SPEC_KEY = "sk-SPEC-secret-0123456789"
ENV_KEY = "sk-ENV-secret-9876543210"


def chat_reply(request: httpx2.Request) -> httpx2.Response:
    body = json.loads(request.content)
    return httpx2.Response(200, json={
        "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "Arr, the sea is calm today."}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}})


@pytest.mark.parametrize("where", ["spec", "env"])
def test_keys_are_used_but_never_written(where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request.headers.get("authorization", ""))
        return chat_reply(request)

    backend_opts = {"base_url": "http://127.0.0.1:9/v1", "api_key_env": "MY_KEY"}
    if where == "spec":
        backend_opts["api_key"] = SPEC_KEY
    else:
        monkeypatch.setenv("MY_KEY", ENV_KEY)
    key = SPEC_KEY if where == "spec" else ENV_KEY
    spec = {"study": "grid", "model": "openai/m", "backend": backend_opts, "personas": ["builtin:pirate-captain"],
            "options": {"questions": ["How is the sea?"]}}
    resolved = resolve_spec(spec)
    backend = OpenAIBackend("openai/m", OpenAIOptions.model_validate(backend_opts),
                            http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)))
    out = tmp_path / "run"
    outcome = run_study(resolved, out, backends={"openai/m": backend}, quiet=False)

    assert outcome.stats.backend_calls == 2 and seen == [f"Bearer {key}"] * 2  # the key reached the server
    written = [out / n for n in ("run.json", "results.jsonl", "summary.json", "report.html")]
    store = Path(outcome.run["store"])
    for path in [*written, store, *store.parent.glob(store.name + "*")]:
        assert key.encode() not in path.read_bytes(), path
    captured = capsys.readouterr()
    assert key not in captured.out + captured.err
    run = json.loads((out / "run.json").read_text())
    if where == "spec":
        assert run["spec"]["backend"]["api_key"] == "***"
    assert run["spec"]["backend"]["api_key_env"] == "MY_KEY"  # the variable's name is not a secret


def test_a_key_with_a_trailing_newline_is_refused_without_being_quoted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The HTTP library rejects such a header with an error that quotes it ('Illegal header value
    b'Bearer sk-...''), which used to land in the store, results.jsonl, run.json and the terminal."""
    monkeypatch.setenv("MY_KEY", ENV_KEY + "\n")
    backend_opts = {"base_url": "http://127.0.0.1:9/v1", "api_key_env": "MY_KEY"}
    with pytest.raises(BackendUnavailableError) as info:
        OpenAIBackend("openai/m", OpenAIOptions.model_validate(backend_opts)).client  # noqa: B018
    assert ENV_KEY not in info.value.one_line() and "$MY_KEY" in info.value.one_line()

    spec = {"study": "grid", "model": "openai/m", "backend": backend_opts, "personas": ["builtin:pirate-captain"],
            "options": {"questions": ["How is the sea?"]}}
    out = tmp_path / "run"
    with pytest.raises(PersonaeError) as aborted:
        run_study(resolve_spec(spec), out)
    assert ENV_KEY not in aborted.value.one_line()
    store = tmp_path / "store.sqlite"
    for path in [*out.iterdir(), *tmp_path.glob(store.name + "*")]:
        assert ENV_KEY.encode() not in path.read_bytes(), path


def test_backend_error_messages_mask_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", ENV_KEY)
    backend = OpenAIBackend("openai/m", OpenAIOptions(base_url="http://127.0.0.1:9/v1", api_key_env="MY_KEY"))
    mapped = backend._map_error(RuntimeError(f"header 'Bearer {ENV_KEY}' refused"))
    assert ENV_KEY not in mapped.one_line() and ENV_KEY not in str(mapped)
    assert "Bearer ***" in mapped.one_line()


def test_credentials_in_a_base_url_are_masked_in_run_json_and_errors(tmp_path: Path) -> None:
    """A base_url like http://user:pass@host/v1 must not reach run.json or error rows."""
    import socket

    from personae.runner import RunAborted

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://alice:hunter2-pass@127.0.0.1:{port}/v1"
    spec = {"study": "grid", "model": "openai/m", "backend": {"base_url": url},
            "concurrency": {"retry": {"max_attempts": 1, "base_delay_s": 0}},
            "options": {"questions": ["Hi?"], "include_baseline": True}}
    out = tmp_path / "run"
    with pytest.raises(RunAborted) as err:
        run_study(resolve_spec(spec), out)
    assert "hunter2-pass" not in str(err.value) and f"127.0.0.1:{port}" in str(err.value)
    store = Path(os.environ["PERSONAE_STORE"])
    for path in [*out.iterdir(), *store.parent.glob(store.name + "*")]:
        assert b"hunter2-pass" not in path.read_bytes(), path
    assert json.loads((out / "run.json").read_text())["spec"]["backend"]["base_url"].startswith("http://***@")


def test_per_provider_backend_blocks_are_redacted_too() -> None:
    from personae.api import redact

    got = redact({"openai": {"base_url": "http://u:p4ss@127.0.0.1:1/v1", "api_key": "sk-x"}, "local": {"n_ctx": 4}})
    assert got == {"openai": {"base_url": "http://***@127.0.0.1:1/v1", "api_key": "***"}, "local": {"n_ctx": 4}}
