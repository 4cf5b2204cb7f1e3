"""Dialogues in the published layouts: read as shipped, written back, errors that say where.

The fixtures in tests/data/dialogues/ are written by this project in each layout (no released
data is shipped): PersonaChat/ConvAI2 text (numbered, self and both personas; ParlAI's
'text:' form), PersonaChat JSON (split dict, per-turn rows) and the JSON of arXiv 2511.00222.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from personae.dialogue import Dialogue, Line, Speaker, build_dialogue, read_dialogues, write_dialogues
from personae.errors import ConfigError

DATA = Path(__file__).resolve().parents[1] / "data" / "dialogues"
FIXTURES = {"personachat_self.txt": "parlai", "personachat_both.txt": "parlai", "parlai_dialog.txt": "parlai",
            "personachat.json": "personachat-json", "personachat_turns.jsonl": "personachat-json",
            "consistency_rl.json": "consistency-rl"}


def _content(d: Dialogue) -> tuple[object, ...]:
    """What a layout must carry: speakers with their sheets, and who says what in which order."""
    return (tuple((s.id, s.persona) for s in d.speakers), tuple((x.speaker, x.text) for x in d.lines))


def test_personachat_text_self_original() -> None:
    first, second = read_dialogues(DATA / "personachat_self.txt")
    assert first.speaker("self").persona == ("i keep bees on my roof.", "i am a night nurse.",
                                             "my sister lives in lisbon.")
    assert first.speaker("partner").persona == ()
    assert [x.speaker for x in first.lines] == ["partner", "self"] * 3
    assert first.lines[3].text == "i am a nurse . i also keep bees , strange combo !"
    # the candidates of a reply are kept, the reply itself last, as the file holds them
    assert first.metadata["candidates"]["1"][-1] == first.lines[1].text
    # '__SILENCE__' is the partner saying nothing: the persona's speaker opens the second episode
    assert [x.speaker for x in second.lines] == ["self", "partner", "self"]
    assert second.lines[0].text.startswith("hello ! do you like maps")


def test_personachat_text_both_personas_and_parlai_dialog_form() -> None:
    (both,) = read_dialogues(DATA / "personachat_both.txt")
    assert both.speaker("partner").persona == ("i work in a bank.", "i have two dogs.")
    assert both.speaker("self").persona == ("i play the cello.", "i am vegan.")
    a, b = read_dialogues(DATA / "parlai_dialog.txt")
    assert a.speaker("self").persona == ("i grow tomatoes.", "i am afraid of the dark.")
    assert [x.text for x in a.lines] == ["hello , what are you up to ?", "watering my tomatoes before it gets dark !",
                                         "why before dark ?", "honestly , the dark scares me a little ."]
    assert b.speaker("self").persona == ("i run marathons.",)  # episode_done:True ended the first one
    assert len(b.lines) == 2


def test_personachat_json_split_dict_and_per_turn_rows() -> None:
    train, valid = read_dialogues(DATA / "personachat.json")
    assert (train.id, valid.id) == ("train-0", "valid-0")
    assert [x.text for x in train.lines][-1] == "mostly sourdough and croissants ."  # the last candidate is the reply
    assert [x.speaker for x in train.lines] == ["partner", "self", "partner", "self"]
    assert [(x.speaker, x.text) for x in valid.lines] == [("self", "hi ! do you play chess ?")]
    long, short = read_dialogues(DATA / "personachat_turns.jsonl")
    assert long.id == "conv-7" and len(long.lines) == 4  # the longest history of the conversation
    assert long.lines[-1].text == "on my red bike , rain or shine ."
    assert short.speaker("self").persona == ("i am a pilot.",)


def test_consistency_rl_layout_keeps_the_papers_scores() -> None:
    edu, therapy = read_dialogues(DATA / "consistency_rl.json")
    assert [x.speaker for x in edu.lines] == ["P1", "P2", "P1", "P2"]  # alternation from pturn = 1
    assert edu.lines[1].text == "Algebra, I guess. It confuses me."  # 'P2: ' and the newline removed
    assert edu.reference_scores == {"P1.prompt_to_line": 1.0, "P2.prompt_to_line": 0.5, "P2.line_to_line": 1.0}
    assert edu.metadata["task_name"] == "Education"
    assert therapy.speaker("P1").name == "Therapist" and therapy.speaker("P1").persona == ()
    assert therapy.speaker("P2").name == "Patient"
    assert therapy.lines[3].text == "I lie awake until noon."
    assert therapy.reference_scores["P2.line_to_line"] == 0.75


def test_pturn_two_starts_with_p2(tmp_path: Path) -> None:
    rec = {"P1": "a", "P2": "b", "pturn": 2, "conversation": ["P2: first", "P1: second", "P2: third"]}
    path = tmp_path / "rl.json"
    path.write_text(json.dumps([rec]), encoding="utf-8")
    (d,) = read_dialogues(path)
    assert [(x.speaker, x.text) for x in d.lines] == [("P2", "first"), ("P1", "second"), ("P2", "third")]


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_each_layout_round_trips(name: str, tmp_path: Path) -> None:
    original = read_dialogues(DATA / name)
    layout = FIXTURES[name]
    out = tmp_path / (Path(name).stem + (".txt" if layout == "parlai" else ".json" if layout == "consistency-rl"
                                         else ".jsonl"))
    back = read_dialogues(write_dialogues(original, out, layout=layout), layout=layout)
    assert [_content(d) for d in back] == [_content(d) for d in original]
    if layout == "consistency-rl":
        assert [d.reference_scores for d in back] == [d.reference_scores for d in original]
        assert [d.speaker("P1").name for d in back] == [d.speaker("P1").name for d in original]
    if layout == "parlai":
        assert [d.metadata for d in back] == [d.metadata for d in original]  # candidates survive


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_personae_layout_holds_every_field(name: str, tmp_path: Path) -> None:
    original = read_dialogues(DATA / name)
    back = read_dialogues(write_dialogues(original, tmp_path / "d.jsonl"))
    assert back == original


def test_across_layouts_the_lines_survive(tmp_path: Path) -> None:
    (both,) = read_dialogues(DATA / "personachat_both.txt")
    (rl,) = read_dialogues(write_dialogues([both], tmp_path / "x.json", layout="consistency-rl"))
    assert [x.text for x in rl.lines] == [x.text for x in both.lines]
    assert rl.speaker("P1").persona == (" ".join(both.speaker("self").persona),)


# ---------------------------------------------------------------- the model's own checks


def test_dialogue_checks_its_speakers_and_turns() -> None:
    with pytest.raises(ValueError, match="not among the speakers"):
        Dialogue(id="d", speakers=(Speaker(id="a"),), lines=(Line(speaker="b", turn=0, text="x"),))
    with pytest.raises(ValueError, match="turns count the lines"):
        Dialogue(id="d", speakers=(Speaker(id="a"),), lines=(Line(speaker="a", turn=1, text="x"),))
    with pytest.raises(ValueError, match="unique"):
        Dialogue(id="d", speakers=(Speaker(id="a"), Speaker(id="a")))
    d = build_dialogue("d", [Speaker(id="a"), Speaker(id="b")], [("a", "1"), ("b", "2"), ("a", "3")])
    assert [x.text for x in d.lines_of("a")] == ["1", "3"] and [x.text for x in d.before(2)] == ["1", "2"]


# ---------------------------------------------------------------- errors name the place and the fix


def _error(path: Path, layout: str = "auto") -> str:
    with pytest.raises(ConfigError) as info:
        read_dialogues(path, layout=layout)  # type: ignore[arg-type]
    text = str(info.value)
    assert "\n" not in text and "Fix:" in text
    return text


def test_unknown_json_layout_names_its_fields(tmp_path: Path) -> None:
    path = tmp_path / "chat.jsonl"
    path.write_text('{"messages": [], "user": "x"}\n', encoding="utf-8")
    text = _error(path)
    assert "chat.jsonl:1:" in text and "messages, user" in text and "consistency-rl" in text


def test_text_file_that_is_not_personachat(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("1 your persona: i am fine.\nthis line has no number\n", encoding="utf-8")
    assert "notes.txt:2:" in _error(path)


def test_personae_record_with_an_unknown_speaker_names_the_line(tmp_path: Path) -> None:
    good = build_dialogue("a", [Speaker(id="x")], [("x", "hi")]).model_dump(mode="json")
    bad = {**good, "id": "b", "lines": [{"speaker": "ghost", "turn": 0, "text": "boo"}]}
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n", encoding="utf-8")
    text = _error(path)
    assert "d.jsonl:2:" in text and "ghost" in text


def test_consistency_rl_bad_entries(tmp_path: Path) -> None:
    path = tmp_path / "rl.json"
    path.write_text(json.dumps([{"P1": "a", "P2": "b", "pturn": 3, "conversation": []}]), encoding="utf-8")
    assert "field 'pturn'" in _error(path)
    path.write_text(json.dumps([{"P1": "a", "P2": "b", "conversation": [{"line": "x"}]}]), encoding="utf-8")
    assert "conversation entry 0" in _error(path)


def test_unknown_layout_and_duplicate_ids(tmp_path: Path) -> None:
    assert "unknown dialogue layout 'parlay'" in _error(DATA / "personachat_self.txt", layout="parlay")
    d = build_dialogue("same", [Speaker(id="x")], [("x", "hi")])
    path = write_dialogues([d, d], tmp_path / "dup.jsonl")
    assert "two dialogues have the id 'same'" in _error(path)


def test_two_speaker_layouts_refuse_a_group_chat(tmp_path: Path) -> None:
    d = build_dialogue("g", [Speaker(id="a"), Speaker(id="b"), Speaker(id="c")], [("a", "1"), ("b", "2"), ("c", "3")])
    with pytest.raises(ConfigError, match="3 speakers; the parlai layout holds two"):
        write_dialogues([d], tmp_path / "g.txt", layout="parlai")
    assert read_dialogues(write_dialogues([d], tmp_path / "g.jsonl")) == (d,)


def test_the_docs_example_prints_what_the_page_says(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import re  # noqa: PLC0415

    root = Path(__file__).resolve().parents[2]
    code = re.search(r"```python\n(.*?)```", (root / "docs" / "dialogues.md").read_text(encoding="utf-8"), re.S)
    assert code is not None
    source = code.group(1).replace("/tmp/", f"{tmp_path}/")
    monkeypatch.chdir(root)
    exec(compile(source, "docs/dialogues.md", "exec"), {})  # noqa: S102
    promised = []
    for line in source.splitlines():
        stripped = line.strip()
        if stripped.startswith("print(") and "#" in stripped:
            promised.append(line.split("#", 1)[1].strip())
        elif stripped.startswith("# ") and promised:
            promised.append(stripped[2:])
    assert capsys.readouterr().out.split("\n")[:-1] == promised
    assert read_dialogues(tmp_path / "for_the_paper.json")[0].lines[0].text == "hey there , i just walked my two dogs ."
