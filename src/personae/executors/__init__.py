"""Executors run the runner's pending jobs: asyncio in this process (default), or Ray (`executors.ray`,
imported on demand: it needs the `ray` extra)."""

from .aio import AsyncioExecutor, RunAborted
from .base import Budget, Executor, Job, Outcome, RetryPolicy

__all__ = ["AsyncioExecutor", "Budget", "Executor", "Job", "Outcome", "RetryPolicy", "RunAborted"]
