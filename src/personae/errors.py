"""One error hierarchy. Every error says what went wrong, where, and how to fix it.

Every error text personae shows or records (terminal, store, run.json, results.jsonl) is an
error's `one_line()` or goes through `mask_secrets`: credentials that a server or an HTTP library
echoes back (an Authorization header, an api-key, a Bearer token, user:password in a URL) are
replaced by '***' there, once, for every path.
"""

from __future__ import annotations

import re

_SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # user:password@ (or a bare user@ token) in a URL
    (re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@]+@"), r"\1***@"),
    # 'Authorization: Bearer X', "'authorization': 'Basic X'", 'api-key=X', 'x-api-key: X', 'api_key: X'
    (re.compile(r"(?i)\b((?:proxy-)?authorization|x-api-key|api[-_]?key|openai[-_]api[-_]key)(?![\w-])"
                # a quoted key ('api_key': ...) masks only a quoted value: "field 'api_key': must be text" stays
                r"([\"']\s*[:=]\s*[\"']|\s*[:=]\s*[\"']?)(?!(?:(?:bearer|basic|token)\s+)?\*\*\*)"
                r"(?:(bearer|basic|token)\s+)?[^\s\"',;}\]]+"),
     lambda m: f"{m.group(1)}{m.group(2)}{(m.group(3) + ' ') if m.group(3) else ''}***"),  # type: ignore[list-item]
    # a token after the scheme word, wherever it stands ('Bearer sk-...', 'Basic dXNlcjpwYXNz')
    (re.compile(r"(?i)\b(bearer)\s+(?!\*\*\*)[^\s\"',;}\]]+"), r"\1 ***"),
    (re.compile(r"\b(Basic)\s+[A-Za-z0-9+/]{6,}={0,2}(?![\w+/=])"), r"\1 ***"),
)


def mask_secrets(text: str) -> str:
    """`text` with Authorization / api-key / Bearer / Basic values and URL credentials replaced by '***'."""
    for pattern, repl in _SECRET_PATTERNS:
        text = pattern.sub(repl, text)  # type: ignore[arg-type]
    return text


class PersonaeError(Exception):
    """Root of every error personae raises on purpose."""

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        self.message = mask_secrets(message)
        self.fix = mask_secrets(fix) if fix else fix
        super().__init__(self.one_line())

    def one_line(self) -> str:
        """The message and its fix, with any credential masked (see `mask_secrets`)."""
        return mask_secrets(f"{self.message} Fix: {self.fix}" if self.fix else self.message)

    def __str__(self) -> str:
        return self.one_line()


class ConfigError(PersonaeError):
    """A persona file, spec or option is wrong. Carries the file, line and field."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.file = file
        self.line = line
        self.field = field
        self.detail = mask_secrets(message)
        """The message without the 'file:line: field' prefix (to re-raise with a better location)."""
        where = ""
        if file:
            where = f"{file}:{line}: " if line else f"{file}: "
        if field:
            where += f"field '{field}': "
        super().__init__(where + message, fix=fix)


class UnknownModelError(ConfigError):
    """A model id that no backend knows."""


class BackendError(PersonaeError):
    """A backend failed to answer. `transient` errors are retried by the runner."""

    transient: bool = False

    def __init__(
        self,
        message: str,
        *,
        backend: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
        fix: str | None = None,
    ) -> None:
        self.backend = backend
        self.status = status
        self.retry_after = retry_after
        super().__init__(message, fix=fix)


class TransientBackendError(BackendError):
    """Timeouts, 429, 5xx, connection resets: worth another try."""

    transient = True


class BackendUnavailableError(BackendError):
    """The backend cannot be used at all (server unreachable, package missing)."""


class ServerUnreachableError(TransientBackendError, BackendUnavailableError):
    """No connection could be made to a server (refused, unknown host). Unavailable, but retried
    like a transient failure: a server restarting mid-run costs retries, not the run; a run whose
    first requests all meet it stops with the fix (the executor's abort rule), each one an error row."""


class MissingDependencyError(PersonaeError):
    """An optional dependency is not installed; names the extra to install."""

    def __init__(self, package: str, extra: str, feature: str) -> None:
        super().__init__(
            f"{feature} needs the package '{package}', which is not installed.",
            fix=f"pip install 'personae[{extra}]'",
        )


class ParseError(PersonaeError):
    """A model answer that could not be parsed (counted, never scored as wrong)."""


class RunTerminated(PersonaeError):
    """The run was stopped by SIGTERM: handled like Ctrl-C (status aborted, results kept)."""


def error_text(exc: BaseException) -> str:
    """One masked line for any exception: a PersonaeError's `one_line()`, else 'TypeName: message'."""
    text = exc.one_line() if isinstance(exc, PersonaeError) else mask_secrets(f"{type(exc).__name__}: {exc}")
    return " ".join(text.split())
