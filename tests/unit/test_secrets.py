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

from .mock_http import CLIENTS, backend_with

SPEC_KEY = "sk-SPEC-secret-0123456789"
ENV_KEY = "sk-ENV-secret-9876543210"


def chat_reply(request: httpx2.Request) -> httpx2.Response:
    body = json.loads(request.content)
    return httpx2.Response(200, json={
        "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "Arr, the sea is calm today."}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}})


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("where", ["spec", "env"])
def test_keys_are_used_but_never_written(where: str, client: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
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
    out = tmp_path / "run"
    with backend_with(handler, {k: v for k, v in backend_opts.items() if k != "base_url"}, client) as backend:
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


def test_credentials_in_a_base_url_are_refused_before_anything_is_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A base_url like http://user:pass@host/v1 would make the HTTP client send Basic auth instead of
    the API key, and put the password wherever the URL goes (issue 8, item 6). It is refused when the
    spec is validated, with the password masked and the way to pass a key instead; `personae run`
    then writes no run folder and records nothing in the store."""
    from typer.testing import CliRunner

    from personae.cli.main import app
    from personae.errors import ConfigError

    url = "http://alice:hunter2-pass@127.0.0.1:9/v1"
    spec = {"study": "grid", "model": "openai/m", "backend": {"base_url": url, "api_key_env": "MY_KEY"},
            "options": {"questions": ["Hi?"]}}
    with pytest.raises(ConfigError) as info:
        resolve_spec(spec)
    line = info.value.one_line()
    assert info.value.field == "backend.base_url"
    assert "hunter2-pass" not in line and "alice" not in line and "http://***@127.0.0.1:9/v1" in line
    assert "holds a user name or password" in line and "api_key_env (now MY_KEY)" in line

    path = tmp_path / "spec.yaml"
    path.write_text(json.dumps(spec), encoding="utf-8")
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(out), "--quiet"])
    assert result.exit_code == 2, result.output
    assert "hunter2-pass" not in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists()  # refused before the run folder was made
    store = Path(os.environ["PERSONAE_STORE"])
    for found in store.parent.glob(store.name + "*"):
        assert b"hunter2-pass" not in found.read_bytes(), found

    # Python callers that build a backend themselves, and a URL from the environment, get the same rule
    with pytest.raises(ConfigError, match="holds a user name or password"):
        OpenAIBackend("openai/m", OpenAIOptions(base_url=url))
    monkeypatch.setenv("PERSONAE_OPENAI_BASE_URL", url)
    with pytest.raises(ConfigError, match="PERSONAE_OPENAI_BASE_URL") as env_info:
        resolve_spec({**spec, "backend": {}})
    assert "hunter2-pass" not in env_info.value.one_line()


@pytest.mark.parametrize("url", ["not a url", "127.0.0.1:8000/v1", "ftp://127.0.0.1/v1", "http:///v1",
                                 "http://127.0.0.1:port/v1"])
def test_a_base_url_that_is_not_an_http_url_is_refused_at_validation(url: str) -> None:
    from personae.errors import ConfigError

    with pytest.raises(ConfigError, match="backend.base_url") as info:
        resolve_spec({"study": "grid", "model": "openai/m", "backend": {"base_url": url},
                      "options": {"questions": ["Hi?"]}})
    assert "e.g. http://127.0.0.1:8000/v1" in info.value.one_line()


ECHOED = ("invalid credentials: got headers {'authorization': 'Basic dXNlcjpwYXNzd29yZA==', "
          "'x-api-key': 'proxy-secret-123'} and Authorization: Bearer sk-OTHER-secret-55555")
ECHOED_SECRETS = ("dXNlcjpwYXNzd29yZA==", "proxy-secret-123", "sk-OTHER-secret-55555")


@pytest.mark.parametrize("client", CLIENTS)
def test_an_echoed_authorization_header_is_masked_in_every_error_text(
        client: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A server (or a proxy before it) that echoes the request's credentials in its error body: the
    error text reaches the store, results.jsonl, run.json and the terminal only masked. (The key of
    this backend is masked by the backend itself; these are values it never knew.)"""
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(401, json={"error": {"message": ECHOED, "type": "auth"}})

    spec = {"study": "grid", "model": "openai/m", "backend": {"base_url": "http://127.0.0.1:9/v1"},
            "options": {"questions": ["Hi?"], "include_baseline": True}}
    out = tmp_path / "run"
    with backend_with(handler, {"api_key": "sk-test-0000"}, client) as backend, \
            pytest.raises(PersonaeError) as info:
        run_study(resolve_spec(spec), out, backends={"openai/m": backend}, quiet=False)
    texts = [info.value.one_line(), str(info.value), capsys.readouterr().err]
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    assert rows and all("answered 401" in r["error"] and "Basic ***" in r["error"] for r in rows)
    store = Path(os.environ["PERSONAE_STORE"])
    for secret in ECHOED_SECRETS:
        assert all(secret not in t for t in texts), secret
        for path in [*out.iterdir(), *store.parent.glob(store.name + "*")]:
            assert secret.encode() not in path.read_bytes(), (secret, path)
    assert "'x-api-key': '***'" in rows[0]["error"] and "Bearer ***" in rows[0]["error"]


def test_mask_secrets_masks_credentials_and_leaves_field_names_alone() -> None:
    from personae.errors import error_text, mask_secrets

    assert mask_secrets("Authorization: Bearer sk-abc.def") == "Authorization: Bearer ***"
    assert mask_secrets("header 'Bearer sk-ENV-1' refused") == "header 'Bearer ***' refused"
    assert mask_secrets('{"Authorization": "Basic dXNlcjpwYXNz"}') == '{"Authorization": "Basic ***"}'
    assert mask_secrets("api-key=abcd1234; next") == "api-key=***; next"
    assert mask_secrets("OPENAI_API_KEY=sk-abc") == "OPENAI_API_KEY=***"
    assert mask_secrets("see http://u:p4ss@127.0.0.1:1/v1 now") == "see http://***@127.0.0.1:1/v1 now"
    once = mask_secrets("{'authorization': 'Basic dXNlcjpwYXNz', 'api-key': 'k-1'} Bearer sk-2")
    assert once == "{'authorization': 'Basic ***', 'api-key': '***'} Bearer ***"
    assert mask_secrets(once) == once  # masking twice (message, then one_line) changes nothing more
    for plain in ("field 'backend.api_key': must be text (got 3).", "api_key_env: MY_KEY",
                  "the API key in $MY_KEY contains spaces", "a basic understanding", "http://***@h/v1",
                  "mailto:bob@example.org", "https://example.org/a@b"):
        assert mask_secrets(plain) == plain
    assert error_text(RuntimeError("Authorization: Bearer sk-1\nmore")) == "RuntimeError: Authorization: Bearer *** more"


def test_per_provider_backend_blocks_are_redacted_too() -> None:
    from personae.api import redact

    got = redact({"openai": {"base_url": "http://u:p4ss@127.0.0.1:1/v1", "api_key": "sk-x"}, "local": {"n_ctx": 4}})
    assert got == {"openai": {"base_url": "http://***@127.0.0.1:1/v1", "api_key": "***"}, "local": {"n_ctx": 4}}


def test_extra_header_values_are_redacted_and_masked_in_errors() -> None:
    from personae.api import redact

    headers = {"Authorization-Gateway": "gw-secret-98765", "X-Team": "lab-42"}
    assert redact({"openai": {"headers": headers}}) == {"openai": {"headers": {"Authorization-Gateway": "***",
                                                                               "X-Team": "***"}}}
    backend = OpenAIBackend("openai/m", OpenAIOptions(base_url="http://127.0.0.1:9/v1", headers=headers))
    mapped = backend._map_error(RuntimeError("proxy said: bad gateway credential gw-secret-98765"))
    assert "gw-secret-98765" not in mapped.one_line() and "***" in mapped.one_line()


def test_personae_models_never_prints_a_password_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from personae.cli.main import app

    monkeypatch.setenv("PERSONAE_OPENAI_BASE_URL", "http://alice:hunter2-pass@127.0.0.1:9/v1")
    result = CliRunner().invoke(app, ["models"])
    assert result.exit_code == 0, result.output
    assert "hunter2-pass" not in result.output and "http://***@127.0.0.1:9/v1" in result.output
