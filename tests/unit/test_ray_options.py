"""Bad Ray executor options: one line, exit 2, before any model call (no Ray cluster is started).

The spec's executor block has its golden bad-input rows (tests/bad_inputs/spec_executor_*.yaml);
these are the CLI's flags and how they meet the spec. The Ray runs themselves are in
tests/integration/test_ray_executor.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from personae.cli.main import app
from personae.errors import BackendError, TransientBackendError

cli = CliRunner()


def _spec(tmp_path: Path, **extra: Any) -> tuple[Path, Path]:
    log = tmp_path / "calls.log"
    data = {"study": "grid", "model": "fake/test", "backend": {"call_log": str(log)},
            "options": {"questions": ["Hello?"]}, **extra}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path, log


def _one_error(tmp_path: Path, spec: Path, log: Path, *flags: str) -> str:
    result = cli.invoke(app, ["run", str(spec), "--out", str(tmp_path / "out"), "-q", *flags])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Fix:" in lines[0], result.output
    assert not log.exists() and not (tmp_path / "out").exists()  # no model call, no run folder
    return lines[0]


def test_an_unknown_executor_is_one_line(tmp_path: Path) -> None:
    spec, log = _spec(tmp_path)
    line = _one_error(tmp_path, spec, log, "--executor", "rey")
    assert "no executor 'rey'" in line and "--executor ray" in line


@pytest.mark.parametrize("extra, flags, field", [
    ({"executor": {"workers": 2}}, (), "executor.workers"),
    ({"executor": {"address": "127.0.0.1:6379"}}, (), "executor.address"),
    ({}, ("--address", "127.0.0.1:6379"), "--address"),
    ({"executor": {"kind": "ray", "workers": 2}}, ("--executor", "asyncio"), "executor.workers"),
])
def test_ray_options_on_an_asyncio_run_are_one_line(tmp_path: Path, extra: dict[str, Any], flags: tuple[str, ...],
                                                    field: str) -> None:
    spec, log = _spec(tmp_path, **extra)
    line = _one_error(tmp_path, spec, log, *flags)
    assert f"field '{field}'" in line and "option of the Ray executor" in line and "--executor ray" in line


def test_a_malformed_address_is_one_line(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    spec, log = _spec(tmp_path)
    line = _one_error(tmp_path, spec, log, "--executor", "ray", "--address", "headnode")
    assert "'headnode' is not a Ray address" in line and "HOST:PORT" in line


def test_a_ray_client_address_without_grpc_names_the_extra(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    import importlib.util

    if importlib.util.find_spec("grpc") is not None:
        pytest.skip("grpcio is installed here")
    spec, log = _spec(tmp_path)
    line = _one_error(tmp_path, spec, log, "--executor", "ray", "--address", "ray://127.0.0.1:10001")
    assert "Ray Client address" in line and "ray[client]" in line


def test_errors_cross_the_wire_with_their_fields() -> None:
    from personae.executors.ray import _decode_error, _encode_error

    err = TransientBackendError("rate limited (429)", backend="openai/m", status=429, retry_after=2.0, fix="wait")
    back = _decode_error(_encode_error(err))
    assert type(back) is TransientBackendError and back.one_line() == err.one_line()
    assert (back.backend, back.status, back.retry_after) == ("openai/m", 429, 2.0)
    odd = _decode_error(_encode_error(ValueError("boom")))
    assert type(odd) is BackendError and "unexpected ValueError in a Ray worker: boom" in odd.message


def test_a_worker_entry_is_laid_over_the_backend_options() -> None:
    from personae.backends.fake import FakeOptions
    from personae.executors.ray import _override

    base = FakeOptions(delay_s=0.5, responder="echo")
    assert _override(base, {}) is base
    assert _override(base, {"delay_s": 0.1}) == FakeOptions(delay_s=0.1, responder="echo")
