"""Getting runs out of the store: list them, rebuild one, export it.

Every run records in the store which results make it up (`run_items`, in plan order, with their
tags), its spec, personas, roles, status and counts, and the artifacts it produced (its summary
among them). So any run can be rebuilt from the store alone, even when its run folder is gone:

    from personae import load_run
    run = load_run("runs/style")          # a run folder, or a run id (or a unique prefix of one)
    run.requests.groupby("persona")["response"].count()
    run.analyze()                         # the study's analysis, again, from the stored results
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, overload

from .backends.base import Request, Tags
from .errors import ConfigError, MissingDependencyError
from .runner import Result, result_from_output
from .store import Store

__all__ = ["LoadedRun", "StoredResults", "load_run", "export_run", "EXPORT_FORMATS"]

EXPORT_FORMATS = ("csv", "jsonl", "parquet")
FINISHED = ("complete", "complete_with_errors")


@dataclass
class LoadedRun:
    """A past run rebuilt from the store."""

    run_id: str
    study: str
    status: str
    meta: dict[str, Any]
    """What the run recorded: spec, personas, roles, models, counts, totals, times."""
    results: list[Result]
    """Its results in plan order, with their tags (errors included)."""
    summary: dict[str, Any] | None
    """Its summary.json as stored (None if it did not finish)."""
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    """What it produced: name, kind, content or path, sha256."""

    def resolve(self) -> Any:
        """The run's spec, resolved again (its personas as the run used them)."""
        from .spec import resolve_spec  # noqa: PLC0415

        data = dict(self.meta["spec"])
        data["personas"] = list(self.meta.get("personas", []))
        spec_file = self.meta.get("spec_file")
        base = Path(self.meta.get("base_dir") or ".")
        path = Path(spec_file) if spec_file else base / "spec.yaml"
        return resolve_spec(data, path=path)

    @cached_property
    def _study(self) -> Any:
        from .studies import get_study  # noqa: PLC0415

        return get_study(self.study)(self.resolve())

    def analyze(self, *, allow_incomplete: bool = False) -> Any:
        """The study's Summary computed again from the stored results. A run that did not finish
        (stopped by a budget, aborted) holds part of its results: analysing them needs
        `allow_incomplete=True`, and the summary's first note says so."""
        from .api import add_role_notes  # noqa: PLC0415

        if self.status not in FINISHED and not allow_incomplete:
            raise ConfigError(f"run {self.run_id} is {self.status}: it holds {len(self.results)} results, part of what "
                              "its study plans, and a summary of them would read like a finished one.",
                              fix="resume it (personae run SPEC again), or analyze(allow_incomplete=True).")
        summary = self._study.analyze(self.results)
        add_role_notes(self._study, self.results, summary)
        if self.status not in FINISHED:
            summary.notes.insert(0, f"INCOMPLETE: run {self.run_id} is {self.status}; this analyses the "
                                    f"{len(self.results)} results it has, not the whole study.")
        return summary

    @cached_property
    def requests(self) -> Any:
        """One row per request: flat columns (tags, role, model, prompts, response, the study's
        per-answer features, error). Role calls carry their role, so groupby('persona') over the
        rows with role == None never mixes verdicts into answers."""
        import pandas as pd  # noqa: PLC0415

        try:
            study = self._study
        except Exception:  # noqa: BLE001 (a spec that no longer resolves still gives its raw rows)
            study = None
        rows = []
        for pos, r in enumerate(self.results):
            row = _flat_row(self.run_id, pos, r)
            if study is not None and r.ok:
                row.update(study.row_features(r))
            rows.append(row)
        return pd.DataFrame(rows, columns=list(dict.fromkeys(_COLUMNS + [k for row in rows for k in row])))

    @cached_property
    def tables(self) -> dict[str, Any]:
        """The summary's tables: 'summary' (its main table) and 'stats' (every statistic, one row per
        leaf: path and value)."""
        import pandas as pd  # noqa: PLC0415

        summary = self.summary or {}
        leaves: list[dict[str, Any]] = []
        _leaves(summary.get("stats", {}), "", leaves)
        return {"summary": pd.DataFrame(summary.get("table", [])), "stats": pd.DataFrame(leaves, columns=["path", "value"])}


_COLUMNS = ["run_id", "position", "wave", "role", "model", "kind", "persona", "item", "condition", "replicate",
            "system_prompt", "last_user", "response", "logprob", "embedding_dim", "error", "key"]


def _flat_row(run_id: str, position: int, r: Result) -> dict[str, Any]:
    req, t = r.request, r.request.tags
    system = next((m.content for m in req.messages if m.role == "system"), None)
    row = {"run_id": run_id, "position": position, "wave": t.wave, "role": t.role, "model": req.model,
           "kind": req.kind, "persona": t.persona, "item": t.item, "condition": t.condition,
           "replicate": req.replicate, "system_prompt": system,
           "last_user": req.input if req.kind == "embed" else req.last_user(),
           "response": r.text, "logprob": r.score.logprob if r.score else None,
           "embedding_dim": len(r.embedding.vector) if r.embedding else None, "error": r.error, "key": r.key}
    for k, v in t.extra.items():
        row.setdefault(f"extra.{k}", v if isinstance(v, (str, int, float, bool)) or v is None else json.dumps(v))
    return row


def _leaves(node: Any, path: str, out: list[dict[str, Any]]) -> None:
    if isinstance(node, dict):
        for k, v in node.items():
            _leaves(v, f"{path}.{k}" if path else str(k), out)
    elif isinstance(node, list) and any(isinstance(v, (dict, list)) for v in node):
        for i, v in enumerate(node):
            _leaves(v, f"{path}.{i}", out)
    else:
        out.append({"path": path, "value": json.dumps(node) if isinstance(node, list) else node})


def _open_existing(path: str | Path) -> Store:
    """Open a store that must exist already (reading a run never creates an empty store)."""
    if not Path(path).is_file():
        raise ConfigError(f"no store at {path}.", file=str(path),
                          fix="give the store the run used (--store / PERSONAE_STORE; run.json names it).")
    return Store(path)


def _candidates(store: Store | str | Path | None, hint: str | None) -> list[Store | str | Path]:
    """Where to look for a run: the given store, then the one its run.json names."""
    from .store import default_store_path  # noqa: PLC0415

    first = store if store is not None else (hint if hint and Path(hint).is_file() else default_store_path())
    out: list[Store | str | Path] = [first]
    if hint and Path(hint).is_file() and (isinstance(first, Store) or Path(first) != Path(hint)):
        out.append(hint)
    return out


def load_run(run: str | Path, *, store: Store | str | Path | None = None) -> LoadedRun:
    """Rebuild a run from the store: `run` is a run folder (its run.json names the run and store)
    or a run id (or a unique prefix of one)."""
    run_id, hint = str(run), None
    folder = Path(run)
    if folder.is_dir():
        try:
            info = json.loads((folder / "run.json").read_text(encoding="utf-8"))
            run_id, hint = info["run_id"], info.get("store")
        except (OSError, ValueError, KeyError, TypeError):
            raise ConfigError("this folder has no readable run.json.", file=str(folder / "run.json"),
                              fix="give a run folder written by 'personae run', or a run id from 'personae runs'.") from None
    searched: list[str] = []
    for where in _candidates(store, hint):
        st = where if isinstance(where, Store) else _open_existing(where)
        try:
            matches = st.runs_matching(run_id)
            if len(matches) > 1:
                raise ConfigError(f"run id prefix '{run_id}' matches {len(matches)} runs: {', '.join(matches[:8])}.",
                                  file=str(st.path), fix="give more characters of the run id ('personae runs').")
            if matches:
                record = st.run(matches[0])
                assert record is not None
                results = _results(st, record["run_id"])
                artifacts = st.artifacts(record["run_id"])
                break
            searched.append(str(st.path))
        finally:
            if not isinstance(where, Store):
                st.close()
    else:
        raise ConfigError(f"no run '{run_id}' in the store {' or '.join(searched)}.", file=searched[0],
                          fix="list the runs with 'personae runs' (and --store if the run used another store).")
    summary = next((json.loads(a["content"]) for a in artifacts if a["name"] == "summary" and a["content"]), None)
    return LoadedRun(run_id=record["run_id"], study=record["study"], status=record["status"], meta=record["meta"],
                     results=results, summary=summary, artifacts=[a for a in artifacts if a["name"] != "summary"])


def _results(st: Store, run_id: str) -> list[Result]:
    return list(_stored_results(st, run_id, st.run_items(run_id)))


def _stored_results(st: Store, run_id: str, items: Sequence[tuple[int, str, int | None, int, str]]) -> Iterator[Result]:
    """The Results of these run items, rebuilt from the store (items whose row is gone are skipped);
    a result is `cached` for the run when another run computed it."""
    found = st.get_full([key for _, key, err, _, _ in items if err is None])
    errors = st.errors_by_id([err for _, _, err, _, _ in items if err is not None])
    for _, key, err, _, tags_json in items:
        tags = Tags.model_validate_json(tags_json)
        if err is not None:
            e = errors.get(err)
            if e is None or not e["request"]:
                continue
            req = Request.model_validate({**json.loads(e["request"]), "tags": tags})
            yield Result(req, key, error=e["error"], attempts=e["attempts"], error_id=err)
            continue
        hit = found.get(key)
        if hit is None:
            continue
        kind, req_json, resp, origin = hit
        req = Request.model_validate({**json.loads(req_json), "tags": tags})
        yield result_from_output(req, key, kind, resp, cached=origin != run_id)


class StoredResults(Sequence[Result]):
    """A run's results as a sequence read from the store, a chunk at a time: what a run of a
    streaming study (one that holds no Result objects) hands back as `RunOutcome.results`, and what
    its `plan` and `figures` receive. Iterating rebuilds each Result (about 30 us each); memory stays
    one chunk. Indexing by position reads that row."""

    CHUNK = 2048

    def __init__(self, store: Store, run_id: str, size: int | None = None) -> None:
        self._store, self.run_id = store, run_id
        self._size = size

    @property
    def store(self) -> Store:
        """The run's store; reopened from its file once the run that owned it has closed it."""
        if self._store.closed:
            self._store = Store(self._store.path)
        return self._store

    def __len__(self) -> int:
        if self._size is None:
            self._size = self.store.run_item_count(self.run_id)
        return self._size

    def __iter__(self) -> Iterator[Result]:
        for start in range(0, len(self), self.CHUNK):
            yield from _stored_results(self.store, self.run_id, self.store.run_items(self.run_id, start, start + self.CHUNK))

    @overload
    def __getitem__(self, index: int) -> Result: ...
    @overload
    def __getitem__(self, index: slice) -> list[Result]: ...

    def __getitem__(self, index: int | slice) -> Result | list[Result]:
        n = len(self)
        if isinstance(index, slice):
            start, stop, step = index.indices(n)
            if step != 1:
                return list(self)[index]
            return list(_stored_results(self.store, self.run_id, self.store.run_items(self.run_id, start, max(start, stop))))
        i = index + n if index < 0 else index
        if not 0 <= i < n:
            raise IndexError(f"result {index} of a run of {n}")
        got = list(_stored_results(self.store, self.run_id, self.store.run_items(self.run_id, i, i + 1)))
        if not got:
            raise IndexError(f"result {index}: its row is no longer in the store")
        return got[0]


def export_run(run: LoadedRun, out_dir: str | Path, fmt: str = "csv") -> list[Path]:
    """Write requests.<fmt>, summary.<fmt> and stats.<fmt> to `out_dir`; returns the files. A run with
    no summary (it stopped before its analysis) gets requests.<fmt> alone, not empty tables."""
    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"no export format '{fmt}'.", field="--format", fix=f"use one of {', '.join(EXPORT_FORMATS)}.")
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401, PLC0415
        except ImportError:
            raise MissingDependencyError("pyarrow", "parquet", "Parquet export") from None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    frames = {"requests": run.requests, **({} if run.summary is None else run.tables)}
    written = []
    for name, frame in frames.items():
        path = out / f"{name}.{fmt}"
        if fmt == "csv":
            frame.to_csv(path, index=False)
        elif fmt == "jsonl":
            frame.to_json(path, orient="records", lines=True, force_ascii=False)
        else:
            frame.astype({c: "string" for c in frame.columns if frame[c].dtype == object}).to_parquet(path, index=False)
        written.append(path)
    return written


def run_rows(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """`personae runs` table rows."""
    import datetime as dt  # noqa: PLC0415

    rows = []
    for r in runs:
        meta = r["meta"]
        counts = meta.get("counts") or {}
        totals = meta.get("totals") or {}
        roles = meta.get("roles") or {}
        bound = [f"{name}: {v['model']}" for name, v in roles.items() if isinstance(v, dict) and v.get("bound")]
        rows.append({"run": r["run_id"], "study": r["study"], "models": ", ".join(meta.get("models", [])),
                     "roles": ", ".join(bound),
                     "status": r["status"], "results": totals.get("results", counts.get("requests")),
                     "errors": totals.get("errors", counts.get("errors")),
                     "backend calls": counts.get("backend_calls"),
                     "started": dt.datetime.fromtimestamp(r["started_at"]).strftime("%Y-%m-%d %H:%M"),
                     "folder": r["out_dir"] or ""})
    return rows
