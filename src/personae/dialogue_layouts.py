"""Published dialogue layouts, read as their authors ship them and written back.

- **personae**: JSON lines, one `Dialogue` (its `model_dump`) per line.
- **parlai**: the PersonaChat / ConvAI2 text files (`train_self_original.txt`,
  `valid_both_revised.txt`, ...). Numbered lines; a line numbered 1 starts an episode;
  `your persona: ...` and `partner's persona: ...` lines give the two sheets; every other line is
  `N partner's line<TAB>own reply[<TAB>reward<TAB>candidate|candidate|...]`. The ParlAI dialog
  form (`text:...<TAB>labels:...<TAB>episode_done:True`, persona lines inside the first `text`
  joined by `\\n`) is read too. `__SILENCE__` (the partner saying nothing first) is not a line.
  Speakers: `self` (who has 'your persona') and `partner`. Candidates are kept in
  `metadata['candidates']` (turn -> list), the reply itself last, as the files hold them.
- **personachat-json**: the JSON release of PersonaChat used by HuggingFace's
  transfer-learning-conv-ai (`personachat_self_original.json`: `{"train": [...], "valid": [...]}`)
  and its JSON-lines copies: per dialogue a `personality` list and `utterances`, each a `history`
  (lines so far, the partner first) and `candidates` (the reply last). Per-turn rows
  (`conv_id`, `utterance_idx`, `personality`, `history`, `candidates`) are grouped by `conv_id`.
- **consistency-rl**: the JSON of arXiv 2511.00222's released dialogues: a list of records with
  `task_name`, backstories `P1` and `P2`, `pturn` (who speaks first, 1 or 2) and `conversation`,
  either strings `"P1: line"` or `[index, "Name: line"]` pairs; speakers alternate from `pturn` as
  in the paper's scorer. Its `P1_prompt_consistency_score`, `P2_index_consistency_score`,
  `..._survey_consistency_score` become reference scores `P1.prompt_to_line`, `P2.line_to_line`,
  `P1.qa`; everything else goes to metadata.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ._loading import LineMap, line_for, read_documents, read_text, validation_to_config_error
from .dialogue import LAYOUTS, Dialogue, Speaker, build_dialogue
from .errors import ConfigError

SILENCE = {"__SILENCE__", "__ SILENCE __"}
_NUMBERED = re.compile(r"^(\d+) (.*)$")
_YOUR, _PARTNER = "your persona:", "partner's persona:"
_RL_SCORE = re.compile(r"^(P[12])_(\w+?)_consistency_score$")
RL_METRICS = {"prompt": "prompt_to_line", "index": "line_to_line", "survey": "qa"}
"""The paper's score names -> personae's metric names (others keep the paper's name)."""

Record = tuple[Any, int | None]  # a JSON record and the line it starts on


def _fail(path: Path, line: int | None, message: str, fix: str, field: str | None = None) -> ConfigError:
    return ConfigError(message, file=str(path), line=line, field=field, fix=fix)


# ---------------------------------------------------------------- dispatch


def read(path: Path, layout: str) -> tuple[Dialogue, ...]:
    if layout != "auto" and layout not in LAYOUTS:
        raise ConfigError(f"unknown dialogue layout {layout!r}.", field="layout",
                          fix=f"use 'auto' or one of: {', '.join(LAYOUTS)}.")
    if layout == "parlai" or (layout == "auto" and path.suffix.lower() == ".txt"):
        dialogues = _read_parlai(path, read_text(path))
    else:
        records = _records(path)
        if layout == "auto":
            layout = _detect(path, records)
        dialogues = READERS[layout](path, records)
    if not dialogues:
        raise _fail(path, None, "holds no dialogue.", "check that this is the file you meant.")
    ids = [d.id for d in dialogues]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise _fail(path, None, f"two dialogues have the id {dup!r}.", "give every dialogue its own id.")
    return tuple(dialogues)


def _records(path: Path) -> list[Record]:
    """The records of a JSON / JSONL file with their lines (a JSON list is one record per entry)."""
    if path.suffix.lower() not in (".json", ".jsonl"):
        raise _fail(path, None, f"unknown dialogue file type '{path.suffix}'.",
                    "use .jsonl or .json (personae, personachat-json, consistency-rl) or .txt (parlai).")
    docs = read_documents(path)
    if path.suffix.lower() == ".jsonl":
        return [(data, lines.get(())) for data, lines in docs]
    data, lines = docs[0]
    if isinstance(data, list):
        return [(rec, line_for(lines, (i,))) for i, rec in enumerate(data)]
    return [(data, 1)]


def _detect(path: Path, records: Sequence[Record]) -> str:
    first, line = records[0]
    keys = set(first) if isinstance(first, Mapping) else set()
    if {"speakers", "lines"} <= keys:
        return "personae"
    if "personality" in keys or ({"train", "valid"} & keys and _is_split_dict(first)):
        return "personachat-json"
    if {"P1", "P2", "conversation"} <= keys:
        return "consistency-rl"
    shown = ", ".join(sorted(map(str, keys))[:8]) if keys else f"a {type(first).__name__}"
    raise _fail(path, line, f"is not a dialogue layout personae knows (the first record has: {shown}).",
                f"convert it to one of {', '.join(LAYOUTS)} (docs/dialogues.md), or name the layout "
                "with 'layout:' if it is one of them.")


def _is_split_dict(rec: Mapping[str, Any]) -> bool:
    return all(isinstance(v, list) for v in rec.values())


def write(dialogues: list[Dialogue], path: Path, layout: str) -> Path:
    if layout not in WRITERS:
        raise ConfigError(f"unknown dialogue layout {layout!r}.", field="layout",
                          fix=f"use one of: {', '.join(LAYOUTS)}.")
    text = WRITERS[layout](dialogues)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)
    return path


# ---------------------------------------------------------------- personae


def _read_personae(path: Path, records: Sequence[Record]) -> list[Dialogue]:
    out = []
    for rec, line in records:
        try:
            out.append(Dialogue.model_validate(rec))
        except ValidationError as exc:
            lines: LineMap = {(): line} if line else {}
            raise validation_to_config_error(exc, Dialogue, file=str(path), lines=lines) from None
    return out


def _write_personae(dialogues: Sequence[Dialogue]) -> str:
    return "".join(json.dumps(d.model_dump(mode="json"), ensure_ascii=False) + "\n" for d in dialogues)


# ---------------------------------------------------------------- ParlAI text


class _Episode:
    def __init__(self) -> None:
        self.own: list[str] = []
        self.partner: list[str] = []
        self.said: list[tuple[str, str]] = []
        self.candidates: dict[str, list[str]] = {}

    def persona_line(self, text: str) -> bool:
        for prefix, sheet in ((_YOUR, self.own), (_PARTNER, self.partner)):
            if text.startswith(prefix):
                sheet.append(text[len(prefix):].strip())
                return True
        return False

    def exchange(self, partner: str, reply: str | None, candidates: str | None) -> None:
        if partner.strip() and partner.strip() not in SILENCE:
            self.said.append(("partner", partner))
        if reply is not None:
            if candidates:
                self.candidates[str(len(self.said))] = candidates.split("|")
            self.said.append(("self", reply))

    def dialogue(self, dialogue_id: str) -> Dialogue:
        speakers = (Speaker(id="self", persona=tuple(self.own)), Speaker(id="partner", persona=tuple(self.partner)))
        meta = {"candidates": self.candidates} if self.candidates else {}
        return build_dialogue(dialogue_id, speakers, self.said, source="parlai", metadata=meta)


def _read_parlai(path: Path, text: str) -> list[Dialogue]:
    episodes: list[_Episode] = []
    current: _Episode | None = None
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        if line.startswith("text:"):
            current = _parlai_dialog_line(path, n, line, current, episodes)
            continue
        m = _NUMBERED.match(line)
        if m is None:
            raise _fail(path, n, "is neither a numbered PersonaChat line ('1 your persona: ...') nor a ParlAI "
                        "'text:...' line.", "check that this is a PersonaChat/ConvAI2 text file, or pass its layout.")
        if int(m.group(1)) == 1 or current is None:
            current = _Episode()
            episodes.append(current)
        body = m.group(2)
        if current.persona_line(body):
            continue
        fields = body.split("\t")
        current.exchange(fields[0], fields[1] if len(fields) > 1 else None, fields[3] if len(fields) > 3 else None)
    return [ep.dialogue(f"{path.stem}-{k}") for k, ep in enumerate(episodes)]


def _parlai_dialog_line(path: Path, n: int, line: str, current: _Episode | None,
                        episodes: list[_Episode]) -> _Episode | None:
    fields: dict[str, str] = {}
    for part in line.split("\t"):
        key, sep, value = part.partition(":")
        if not sep:
            raise _fail(path, n, f"ParlAI field {part[:40]!r} has no 'key:'.", "write every field as key:value.")
        fields[key] = value
    if current is None:
        current = _Episode()
        episodes.append(current)
    utterance = []
    for piece in fields.get("text", "").split("\\n"):
        if not current.persona_line(piece):
            utterance.append(piece)
    label = fields.get("labels", fields.get("eval_labels"))
    current.exchange("\n".join(utterance), label.split("|")[0] if label is not None else None,
                     fields.get("label_candidates"))
    return None if fields.get("episode_done", "").lower() == "true" else current


def _two_speakers(d: Dialogue, first: str, layout: str) -> tuple[Speaker, Speaker]:
    if len(d.speakers) != 2:
        raise ConfigError(f"dialogue {d.id!r} has {len(d.speakers)} speakers; the {layout} layout holds two.",
                          fix="write it in the 'personae' layout, which holds any number.")
    ids = [s.id for s in d.speakers]
    main = d.speaker(first) if first in ids else d.speakers[0]
    other = next(s for s in d.speakers if s.id != main.id)
    return main, other


def _exchanges(d: Dialogue, own: str) -> list[tuple[str, str | None, int | None]]:
    """(partner's line, own reply or None, the reply's turn) pairs, the partner first."""
    pairs: list[tuple[str, str | None, int | None]] = []
    pending: str | None = None
    for line in d.lines:
        if line.speaker == own:
            pairs.append((pending if pending is not None else "__SILENCE__", line.text, line.turn))
            pending = None
        else:
            if pending is not None:
                raise ConfigError(f"dialogue {d.id!r}: the partner speaks twice in a row at turn {line.turn}; "
                                  "PersonaChat layouts alternate.", fix="write it in the 'personae' layout.")
            pending = line.text
    if pending is not None:
        pairs.append((pending, None, None))
    return pairs


def _write_parlai(dialogues: Sequence[Dialogue]) -> str:
    out: list[str] = []
    for d in dialogues:
        own, partner = _two_speakers(d, "self", "parlai")
        rows = [f"{_YOUR} {s}" for s in own.persona] + [f"{_PARTNER} {s}" for s in partner.persona]
        cands = d.metadata.get("candidates", {}) if isinstance(d.metadata.get("candidates"), Mapping) else {}
        for said, reply, turn in _exchanges(d, own.id):
            row = said if reply is None else f"{said}\t{reply}"
            if reply is not None and str(turn) in cands:
                row += "\t\t" + "|".join(cands[str(turn)])
            rows.append(row)
        out.extend(f"{n} {row}" for n, row in enumerate(rows, start=1))
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- PersonaChat JSON


def _read_personachat(path: Path, records: Sequence[Record]) -> list[Dialogue]:
    flat: list[tuple[str, Any, int | None]] = []
    for rec, line in records:
        if isinstance(rec, Mapping) and "personality" not in rec and _is_split_dict(rec):
            for split, items in rec.items():
                flat.extend((f"{split}-{i}", item, line) for i, item in enumerate(items))
        else:
            flat.append((f"{path.stem}-{len(flat)}", rec, line))
    if any(isinstance(rec, Mapping) and "conv_id" in rec for _, rec, _ in flat):
        flat = _longest_per_conversation(path, flat)
    return [_personachat_dialogue(path, did, rec, line) for did, rec, line in flat]


def _longest_per_conversation(path: Path, flat: Sequence[tuple[str, Any, int | None]]) -> list[tuple[str, Any, int | None]]:
    """Per-turn rows: each conversation's last row holds its whole history."""
    best: dict[str, tuple[Any, int | None]] = {}
    for _, rec, line in flat:
        if not isinstance(rec, Mapping) or "conv_id" not in rec or not isinstance(rec.get("history"), list):
            raise _fail(path, line, "a per-turn PersonaChat row needs 'conv_id', 'history' (a list) and "
                        "'candidates'.", "give every row these fields, or one dialogue per line with 'utterances'.")
        conv = str(rec["conv_id"])
        if conv not in best or len(rec["history"]) > len(best[conv][0]["history"]):
            best[conv] = (rec, line)
    return [(f"conv-{conv}", {"personality": rec.get("personality", []),
                              "utterances": [{"history": rec["history"], "candidates": rec.get("candidates", [])}]},
             line) for conv, (rec, line) in best.items()]


def _personachat_dialogue(path: Path, dialogue_id: str, rec: Any, line: int | None) -> Dialogue:
    if not isinstance(rec, Mapping) or not isinstance(rec.get("utterances"), list) or not rec["utterances"]:
        raise _fail(path, line, "a PersonaChat dialogue needs 'personality' (a list) and 'utterances' (a list of "
                    "'history' and 'candidates').", "check the record, or pass the layout that it is.",
                    field="utterances")
    last = rec["utterances"][-1]
    history = last.get("history") if isinstance(last, Mapping) else None
    candidates = last.get("candidates") if isinstance(last, Mapping) else None
    if not isinstance(history, list) or not isinstance(candidates, list) or not candidates:
        raise _fail(path, line, "the last utterance needs a 'history' list and a non-empty 'candidates' list "
                    "(the reply last).", "check the record.", field="utterances")
    said = []
    for k, text in enumerate([*history, candidates[-1]]):
        if not isinstance(text, str):
            raise _fail(path, line, f"history entry {k} is {type(text).__name__}, not text.", "check the record.",
                        field="utterances.history")
        if k == 0 and text.strip() in SILENCE:
            continue
        said.append(("partner" if k % 2 == 0 else "self", text))
    personality = rec.get("personality", [])
    if not isinstance(personality, list) or not all(isinstance(s, str) for s in personality):
        raise _fail(path, line, "'personality' must be a list of sentences.", "check the record.", field="personality")
    speakers = (Speaker(id="self", persona=tuple(personality)), Speaker(id="partner"))
    return build_dialogue(dialogue_id, speakers, said, source="personachat-json")


def _write_personachat(dialogues: Sequence[Dialogue]) -> str:
    out = []
    for d in dialogues:
        own, _ = _two_speakers(d, "self", "personachat-json")
        history: list[str] = []
        utterances = []
        for said, reply, _turn in _exchanges(d, own.id):
            history.append(said)
            if reply is None:
                break
            utterances.append({"history": list(history), "candidates": [reply]})
            history.append(reply)
        if not utterances:
            raise ConfigError(f"dialogue {d.id!r} has no line by {own.id!r}; PersonaChat stores replies of the "
                              "persona's speaker.", fix="write it in the 'personae' layout.")
        out.append(json.dumps({"personality": list(own.persona), "utterances": utterances}, ensure_ascii=False))
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- consistency-RL (arXiv 2511.00222)


def _rl_lines(path: Path, line: int | None, conversation: Any) -> list[str]:
    if not isinstance(conversation, list):
        raise _fail(path, line, "'conversation' must be a list of lines.", "check the record.", field="conversation")
    texts: list[str] = []
    for k, entry in enumerate(conversation):
        if isinstance(entry, str):
            texts.append(entry)
        elif isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], str):
            texts.append(entry[1])
        else:
            raise _fail(path, line, f"conversation entry {k} is neither a line nor an [index, line] pair.",
                        "write each entry as \"P1: ...\" or [index, \"Name: ...\"].", field=f"conversation.{k}")
    return texts


def _strip_names(texts: Sequence[str], who: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """Remove the 'Name: ' each line starts with; a name every line of a speaker shares becomes its name."""
    split = [re.match(r"^\s*([^:\n]{1,40}):\s?(.*)$", t, re.S) for t in texts]
    names: dict[str, str] = {}
    for speaker in set(who):
        prefixes = {m.group(1).strip() if m else None for m, w in zip(split, who) if w == speaker}
        if len(prefixes) == 1 and None not in prefixes:
            names[speaker] = prefixes.pop()  # type: ignore[assignment]
    out = []
    for t, m, w in zip(texts, split, who):
        out.append((m.group(2) if m and w in names else t).rstrip("\n"))
    return out, {w: n for w, n in names.items() if n != w}


def _read_rl(path: Path, records: Sequence[Record]) -> list[Dialogue]:
    out = []
    for k, (rec, line) in enumerate(records):
        if not isinstance(rec, Mapping) or not {"P1", "P2", "conversation"} <= set(rec):
            raise _fail(path, line, "a consistency-RL record needs 'P1', 'P2' and 'conversation'.",
                        "check the record (arXiv 2511.00222's layout).")
        for key in ("P1", "P2"):
            if not isinstance(rec[key], str):
                raise _fail(path, line, "must be the speaker's backstory as text.", "check the record.", field=key)
        texts = _rl_lines(path, line, rec["conversation"])
        first = rec.get("pturn", 1) or 1
        if first not in (1, 2):
            raise _fail(path, line, f"pturn {first!r} is not 1 or 2.", "set pturn to who speaks first.",
                        field="pturn")
        who = [f"P{(first - 1 + i) % 2 + 1}" for i in range(len(texts))]
        texts, names = _strip_names(texts, who)
        scores, meta = {}, {}
        for key, value in rec.items():
            m = _RL_SCORE.match(str(key))
            if m and isinstance(value, (int, float)) and not isinstance(value, bool):
                scores[f"{m.group(1)}.{RL_METRICS.get(m.group(2), m.group(2))}"] = float(value)
            elif key not in ("P1", "P2", "conversation", "pturn"):
                meta[str(key)] = value
        speakers = [Speaker(id=p, name=names.get(p, ""), persona=(rec[p],) if rec[p].strip() else ())
                    for p in ("P1", "P2")]
        did = f"{path.stem}-{rec.get('index', k)}" if rec.get("index", -1) not in (-1, None) else f"{path.stem}-{k}"
        out.append(build_dialogue(did, speakers, list(zip(who, texts)), reference_scores=scores,
                                  source="consistency-rl", metadata=meta))
    return out


def _write_rl(dialogues: Sequence[Dialogue]) -> str:
    back = {v: k for k, v in RL_METRICS.items()}
    out = []
    for d in dialogues:
        p1, p2 = _two_speakers(d, "P1", "consistency-rl")
        ids = {p1.id: "P1", p2.id: "P2"}
        for a, b in zip(d.lines, d.lines[1:]):
            if a.speaker == b.speaker:
                raise ConfigError(f"dialogue {d.id!r}: {a.speaker!r} speaks twice in a row at turn {b.turn}; the "
                                  "consistency-RL layout alternates.", fix="write it in the 'personae' layout.")
        rec: dict[str, Any] = {"task_name": d.metadata.get("task_name", "personae"), "P1": p1.sheet, "P2": p2.sheet,
                               "pturn": 1 if not d.lines or ids[d.lines[0].speaker] == "P1" else 2,
                               "conversation": [[line.turn, f"{d.speaker(line.speaker).name or ids[line.speaker]}: "
                                                 f"{line.text}"] for line in d.lines]}
        rec.update({k: v for k, v in d.metadata.items() if k not in rec})
        for key, value in d.reference_scores.items():
            speaker, _, metric = key.partition(".")
            if speaker in ids:
                rec[f"{ids[speaker]}_{back.get(metric, metric)}_consistency_score"] = value
        out.append(rec)
    return json.dumps(out, ensure_ascii=False, indent=1) + "\n"


READERS: dict[str, Callable[[Path, Sequence[Record]], list[Dialogue]]] = {
    "personae": _read_personae, "personachat-json": _read_personachat, "consistency-rl": _read_rl}
WRITERS: dict[str, Callable[[Sequence[Dialogue]], str]] = {
    "personae": _write_personae, "parlai": _write_parlai, "personachat-json": _write_personachat,
    "consistency-rl": _write_rl}


def speakers_of(dialogues: Iterable[Dialogue]) -> list[str]:
    """Every speaker id, in first-seen order (for summaries that report per speaker)."""
    seen: dict[str, None] = {}
    for d in dialogues:
        for s in d.speakers:
            seen.setdefault(s.id, None)
    return list(seen)
