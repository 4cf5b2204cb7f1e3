"""Executors run the runner's pending jobs: asyncio in this process (default); more can plug in."""

from .aio import AsyncioExecutor, RunAborted
from .base import Budget, Executor, Job, Outcome, RetryPolicy

__all__ = ["AsyncioExecutor", "Budget", "Executor", "Job", "Outcome", "RetryPolicy", "RunAborted"]
