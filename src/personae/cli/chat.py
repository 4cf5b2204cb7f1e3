"""personae chat PERSONA"""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer

from ._common import StoreOption, err, handle_errors, open_store, out


def _persona(ref: str):  # type: ignore[no-untyped-def]
    from ..errors import ConfigError  # noqa: PLC0415
    from ..persona import builtin_persona, builtin_personas, load_personas  # noqa: PLC0415

    if ref.startswith("builtin:"):
        return builtin_persona(ref.removeprefix("builtin:"))
    path = Path(ref)
    if path.exists() or path.is_symlink():  # a dangling link: load_personas says so
        found = load_personas(path)
        if len(found) != 1:
            raise ConfigError(f"holds {len(found)} personas; chat needs one.", file=str(path),
                              fix="give a file with a single persona, or use builtin:ID.")
        return found[0]
    if ref in builtin_personas():
        return builtin_persona(ref)
    raise ConfigError(f"'{ref}' is neither a persona file nor a built-in persona.",
                      fix="give a YAML/JSON persona file or builtin:ID (see 'personae personas').")


def _listener(p, template: str, k: int, alpha: float, beta: float, seed: int):  # type: ignore[no-untyped-def]
    """k random built-in personas (seeded, never the persona itself) rendered as the listener's distractors."""
    from ..backends.base import ListenerDecoding  # noqa: PLC0415
    from ..listener.distractors import sample_others  # noqa: PLC0415
    from ..persona import builtin_personas, render_persona  # noqa: PLC0415

    picked = sample_others(p.id, list(builtin_personas().values()), k, seed)
    return ListenerDecoding(distractors=tuple(render_persona(q, template) for q in picked), alpha=alpha, beta=beta)


@handle_errors
def chat(
    persona: str = typer.Argument(..., help="Persona file (YAML/JSON) or builtin:ID."),
    model: str = typer.Option("local/smollm2-135m", "--model", "-m", envvar="PERSONAE_MODEL", help="Model id."),
    template: str = typer.Option("you-are", "--template", "-t", help="Persona template."),
    temperature: float = typer.Option(0.7, help="Sampling temperature."),
    max_tokens: int = typer.Option(128, help="Longest reply, in tokens."),
    seed: int = typer.Option(0, help="Base seed; turn t uses seed + t."),
    listener: bool = typer.Option(False, "--listener", help="Decode with the imaginary listener (S1): replies "
                                  "only this persona would say. /listener off|on compares."),
    distractors: int = typer.Option(2, min=1, max=10, help="Distractor personas of the listener (random built-ins)."),
    alpha: float = typer.Option(2.0, min=0.0, help="Listener weight (0 = plain greedy)."),
    beta: float = typer.Option(0.5, min=0.0, help="Listener sharpness."),
    store: Path = StoreOption,
) -> None:
    """Talk with a persona at the terminal; the whole history is kept. /reset starts over, /quit ends.

    Examples: personae chat builtin:pirate-captain
              personae chat builtin:pirate-captain --listener    (/listener off to compare)
    """
    from ..backends.base import Message, Request, Sampling, Tags  # noqa: PLC0415
    from ..persona import render_persona  # noqa: PLC0415
    from ..backends.pool import BackendPool  # noqa: PLC0415
    from ..runner import Runner  # noqa: PLC0415

    p = _persona(persona)
    system = render_persona(p, template)
    pool = BackendPool()
    backend = pool.get(model)  # a bad model id or missing server fails here, before the prompt
    decoding = _listener(p, template, distractors, alpha, beta, seed) if listener else None
    if decoding is not None and not backend.supports_multiseq:
        from ..errors import ConfigError  # noqa: PLC0415

        raise ConfigError(f"--listener needs a backend that decodes several sequences in lockstep, and {model} "
                          "cannot.", fix="use local/... (the embedded model or a GGUF file), or drop --listener.")
    state = {"on": decoding is not None}
    if decoding is not None:
        temperature = 0.0  # the listener decodes greedily; /listener off compares with greedy S0

    async def loop() -> None:
        with open_store(store) as st:
            runner = Runner(pool, st, concurrency=1)
            history: list[Message] = []
            err.print(f"Chatting with {p.name} ({p.description}) on {model}. /reset, /quit"
                      + (", /listener off|on." if decoding else "."), markup=False)
            if decoding is not None:
                names = ", ".join(d.split(",")[0].removeprefix("You are ") for d in decoding.distractors)
                err.print(f"listener decoding: distractors {names}; alpha {decoding.alpha:g}, beta {decoding.beta:g} "
                          "(greedy; /listener off gives greedy replies without it).", markup=False)
            while True:
                err.print("you> ", end="")  # the prompt goes to stderr so piped output holds replies only
                try:
                    line = await asyncio.to_thread(input)
                except EOFError:
                    break
                line = line.strip()
                if not line:
                    continue
                if line in ("/quit", "/exit"):
                    break
                if line == "/reset":
                    history = []
                    err.print("(history cleared)")
                    continue
                if line in ("/listener on", "/listener off"):
                    if decoding is None:
                        err.print("(start with --listener to use the listener)")
                    else:
                        state["on"] = line.endswith("on")
                        err.print(f"(listener {'on' if state['on'] else 'off: greedy replies without it'})")
                    continue
                history.append(Message(role="user", content=line))
                turn = sum(m.role == "user" for m in history) - 1
                req = Request(model=model, messages=(Message(role="system", content=system), *history),
                              sampling=Sampling(temperature=temperature, max_tokens=max_tokens, seed=seed + turn),
                              persona_version=p.version, tags=Tags(persona=p.id, wave=turn),
                              decoding=decoding if state["on"] else None)
                (res,) = await runner.run([req])
                if not res.ok:
                    history.pop()
                    err.print(f"error: {res.error}", style="red", markup=False)
                    continue
                history.append(Message(role="assistant", content=res.text or ""))
                out.print(f"{p.name}> {res.text}", markup=False)
            await pool.aclose()

    asyncio.run(loop())
