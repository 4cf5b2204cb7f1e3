"""Backends by provider name, imported lazily. Model ids look like `provider/model`."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from .._loading import validation_to_config_error
from ..errors import UnknownModelError
from .base import Backend, Embedding, Generation, Message, Request, Sampling, Score, Tags

__all__ = ["Backend", "Embedding", "Generation", "Message", "Request", "Sampling", "Score", "Tags", "create_backend",
           "parse_model_id", "check_model_id", "provider_status", "PROVIDERS"]

# provider -> (module, backend class, options class, extra to install)
PROVIDERS: dict[str, tuple[str, str, str, str]] = {
    "local": ("personae.backends.local", "LocalBackend", "LocalOptions", "local"),
    "openai": ("personae.backends.openai", "OpenAIBackend", "OpenAIOptions", "openai"),
    "fake": ("personae.backends.fake", "FakeBackend", "FakeOptions", "core"),
    "embed": ("personae.backends.embedders", "EmbedBackend", "EmbedOptions", "embed"),
}


def parse_model_id(model_id: str) -> tuple[str, str]:
    """'local/smollm2-135m' -> ('local', 'smollm2-135m'), with a suggestion for typos."""
    if "://" in model_id:  # a server URL where the id goes (with a password, masked by the error itself)
        raise UnknownModelError(
            f"'{model_id}' is a URL, not a model id.", field="model",
            fix="write 'openai/MODEL' and put the server's URL in backend.base_url (with no user:password in it; "
            "the key goes in the variable named by backend.api_key_env).")
    provider, sep, name = model_id.partition("/")
    if not sep or not name:
        hint = ""
        if not sep:
            from .local import ALIASES  # noqa: PLC0415 (error path only)

            hint = f" Did you mean 'local/{model_id}'?" if model_id in ALIASES else ""
        raise UnknownModelError(
            f"model id '{model_id}' has no provider.{hint}", field="model",
            fix="write provider/model, e.g. local/smollm2-135m, openai/gpt-4o-mini, fake/test or embed/minilm.")
    if provider not in PROVIDERS:
        close = difflib.get_close_matches(provider, list(PROVIDERS), n=1, cutoff=0.6)
        hint = f" Did you mean '{close[0]}/{name}'?" if close else ""
        raise UnknownModelError(
            f"No model '{model_id}': unknown provider '{provider}'.{hint}", field="model",
            fix=f"start the id with one of the providers: {', '.join(PROVIDERS)}.")
    return provider, name


def check_model_id(model_id: str) -> tuple[str, str]:
    """parse_model_id, plus the provider's own check of the model name (no model is loaded).

    A provider module may define `check_model_name(name)`; the local backend uses it to reject an
    unknown alias or a missing .gguf file when a spec is validated, not when the run starts.
    """
    provider, name = parse_model_id(model_id)
    check = getattr(importlib.import_module(PROVIDERS[provider][0]), "check_model_name", None)
    if check is not None:
        check(name)
    return provider, name


def options_model(provider: str) -> type[BaseModel]:
    module, _, opts, _ = PROVIDERS[provider]
    return getattr(importlib.import_module(module), opts)


def create_backend(model_id: str, options: Mapping[str, Any] | BaseModel | None = None, *,
                   file: str | None = None) -> Backend:
    """Create the backend for a model id, validating its options (a typo is an error)."""
    provider, _ = parse_model_id(model_id)
    module, cls_name, _, _ = PROVIDERS[provider]
    mod = importlib.import_module(module)
    opts_cls = options_model(provider)
    if options is None or isinstance(options, Mapping):
        try:
            opts = opts_cls.model_validate(dict(options or {}))
        except ValidationError as exc:
            raise validation_to_config_error(exc, opts_cls, file=file, prefix=("backend",)) from None
    else:
        opts = options
    return getattr(mod, cls_name)(model_id, opts)


@dataclass(frozen=True)
class ProviderStatus:
    provider: str
    available: bool
    detail: str
    example: str


def provider_status() -> list[ProviderStatus]:
    """Which backends can run here, and why not."""
    rows: list[ProviderStatus] = []
    try:
        from .local import smollm2_path  # noqa: PLC0415
        import llama_cpp  # noqa: F401, PLC0415

        path = smollm2_path()
        ok = path.exists()
        rows.append(ProviderStatus("local", ok, f"llama-cpp-python {llama_cpp.__version__}; embedded model "
                                   f"{'at ' + str(path) if ok else 'missing'}", "local/smollm2-135m"))
    except Exception as exc:  # missing package: say which
        rows.append(ProviderStatus("local", False, str(exc), "local/smollm2-135m"))
    try:
        import openai  # noqa: PLC0415

        from .openai import _env_base_url, without_credentials  # noqa: PLC0415

        url = without_credentials(_env_base_url())  # 'personae models' prints it: never a password
        rows.append(ProviderStatus("openai", True, f"openai {openai.__version__}; base URL "
                                   f"{url or 'not set (PERSONAE_OPENAI_BASE_URL)'}", "openai/MODEL"))
    except ImportError as exc:
        rows.append(ProviderStatus("openai", False, str(exc), "openai/MODEL"))
    rows.append(ProviderStatus("fake", True, "deterministic, for tests", "fake/test"))
    return rows


