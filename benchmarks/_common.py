"""Shared pieces: the result record, prompts, free ports, and a bounded llama.cpp server."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
N_THREADS = 2
N_CTX = 2048


@dataclass
class BenchResult:
    """One benchmark's outcome: a ratio measured side by side, its target, and the raw numbers."""

    name: str
    ratio: float
    target: float
    ratio_label: str
    """What the ratio is, e.g. 'personae/plain throughput'."""
    raw: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.ratio >= self.target


def say(msg: str = "") -> None:
    print(msg, flush=True)


def median(xs: list[float]) -> float:
    return float(statistics.median(xs))


# ---------------------------------------------------------------- prompts

PERSONAS = [
    ("a retired sea captain", "Captain Mara"), ("a pastry chef from Lyon", "Chef Luc"),
    ("a kindergarten teacher", "Ms. Ada"), ("a high-school physics teacher", "Mr. Okafor"),
    ("a beekeeper in Vermont", "Ruth"), ("a night-shift nurse", "Sam"),
    ("a jazz saxophonist", "Dex"), ("a software engineer who loves hiking", "Priya"),
    ("a medieval historian", "Dr. Hale"), ("a teenage skateboarder", "Jojo"),
    ("a wheat farmer in Kansas", "Earl"), ("a marine biologist", "Dr. Ines"),
    ("a retired librarian", "Margaret"), ("a taxi driver in Cairo", "Youssef"),
    ("a professional chess player", "Lena"), ("a mountain guide in Nepal", "Pasang"),
    ("a stand-up comedian", "Benny"), ("a watchmaker in Geneva", "Anton"),
    ("an astronaut in training", "Kai"), ("a village baker", "Greta"),
]
QUESTIONS = [
    "What do you do on a rainy day?", "What is your favourite food?", "Describe your morning.",
    "What scares you most?", "What would you teach a child?", "Where would you like to travel?",
    "What is a good book?", "How do you relax?", "What is your proudest moment?",
    "What do you think of cities?", "Name one useful skill.", "What makes a good friend?",
    "How do you spend Sundays?", "What did you want to be as a child?", "What is the best season?",
]


def persona_system(description: str, name: str) -> str:
    return f"You are {name}, {description}. Answer in one short sentence."


def chat_prompts(n: int, offset: int = 0) -> list[list[dict[str, str]]]:
    """n distinct chats (persona x question), persona-major so prompts share their system prefix."""
    combos = [(p, q) for p in PERSONAS for q in QUESTIONS]
    if n + offset > len(combos):
        raise ValueError(f"only {len(combos)} distinct prompts")
    out = []
    for (desc, name), q in combos[offset : offset + n]:
        out.append([{"role": "system", "content": persona_system(desc, name)}, {"role": "user", "content": q}])
    return out


# ---------------------------------------------------------------- server

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def stop_process_group(proc: subprocess.Popen[Any], *, timeout_s: float) -> None:
    """SIGTERM a server started with start_new_session=True (its own process group only, never
    anything else), then SIGKILL if it has not exited within timeout_s."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout_s)


def _models_ready(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/models", timeout=2) as resp:
            return resp.status == 200 and "data" in json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError):
        return False


@contextlib.contextmanager
def llama_server(model_path: Path, *, alias: str = "smollm2", start_timeout_s: float = 90.0) -> Iterator[str]:
    """Start `python -m llama_cpp.server` on a free 127.0.0.1 port; yield its /v1 URL; always stop it."""
    port = free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model_path), "--model_alias", alias,
           "--host", HOST, "--port", str(port), "--n_ctx", str(N_CTX), "--n_threads", str(N_THREADS),
           "--verbose", "False"]
    log = tempfile.NamedTemporaryFile("w+", prefix="personae-bench-server-", suffix=".log", delete=False)
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    base_url = f"http://{HOST}:{port}/v1"
    try:
        deadline = time.monotonic() + start_timeout_s
        while not _models_ready(base_url):
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"llama_cpp.server exited with {proc.returncode}:\n{log.read()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"llama_cpp.server did not answer /v1/models within {start_timeout_s:g} s "
                                   f"(log: {log.name})")
            time.sleep(0.25)
        yield base_url
    finally:
        stop_process_group(proc, timeout_s=15)
        log.close()
        with contextlib.suppress(OSError):
            os.unlink(log.name)
