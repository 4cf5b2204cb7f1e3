"""One error hierarchy. Every error says what went wrong, where, and how to fix it."""

from __future__ import annotations


class PersonaeError(Exception):
    """Root of every error personae raises on purpose."""

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        self.message = message
        self.fix = fix
        super().__init__(self.one_line())

    def one_line(self) -> str:
        return f"{self.message} Fix: {self.fix}" if self.fix else self.message


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
        self.detail = message
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
