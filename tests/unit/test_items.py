"""Item banks and loaders: the built-in banks, the benchmark layouts (synthetic fixtures), errors."""

from __future__ import annotations

import json
from collections import Counter
from importlib import resources
from pathlib import Path

import pytest
import yaml

from personae.errors import ConfigError
from personae.items import BUILTIN_BANKS, LETTERS, MCItem, builtin_items, load_items, normalize_domain
from personae.persona import builtin_personas

DATA = Path(__file__).resolve().parent.parent / "data"
DOMAINS = {"mathematics", "physics", "chemistry", "biology", "history", "geography", "computer-science"}
LIKERT = ("Strongly disagree", "Disagree", "Neither agree nor disagree", "Agree", "Strongly agree")


# ---------------------------------------------------------------- built-in banks

@pytest.fixture(scope="module")
def general() -> tuple[MCItem, ...]:
    return builtin_items("general")


def test_general_bank_size_and_domains(general: tuple[MCItem, ...]) -> None:
    assert len(general) >= 84
    counts = Counter(it.domain for it in general)
    assert set(counts) == DOMAINS
    assert all(n == 12 for n in counts.values()), counts


def test_general_bank_ids_unique_and_keys_in_range(general: tuple[MCItem, ...]) -> None:
    assert len({it.id for it in general}) == len(general)
    for it in general:
        assert it.answer is not None and 0 <= it.answer < len(it.choices), it.id
        assert len(it.choices) == 4, it.id
        assert len(set(it.choices)) == 4, f"{it.id} has repeated options"
        assert it.source == "personae"


def test_general_bank_letters_balanced_per_domain(general: tuple[MCItem, ...]) -> None:
    for domain in DOMAINS:
        items = [it for it in general if it.domain == domain]
        letters = Counter(it.answer_letter for it in items)
        expected = len(items) / 4
        for letter in "ABCD":
            assert abs(letters[letter] - expected) <= 3, (domain, letters)


def test_general_bank_difficulties(general: tuple[MCItem, ...]) -> None:
    for domain in DOMAINS:
        diffs = Counter(it.metadata.get("difficulty") for it in general if it.domain == domain)
        assert diffs == {"easy": 4, "medium": 4, "hard": 4}, (domain, diffs)


def test_every_domain_has_an_expert_persona(general: tuple[MCItem, ...]) -> None:
    expert_domains = {p.attributes.expertise_domain for p in builtin_personas().values()
                      if p.attributes.expertise_domain}
    missing = {it.domain for it in general} - expert_domains
    assert not missing, f"no built-in expert persona for {missing}"


def test_opinions_bank_has_no_keys_and_five_choices() -> None:
    items = builtin_items("opinions")
    assert len(items) >= 24
    assert len({it.id for it in items}) == len(items)
    for it in items:
        assert it.answer is None and it.answer_letter is None
        assert it.choices == LIKERT
        assert it.question.startswith("How much do you agree with the statement: '")
    assert len({it.domain for it in items}) >= 4


def test_unknown_bank_suggests() -> None:
    assert set(BUILTIN_BANKS) == {"general", "opinions"}
    with pytest.raises(ConfigError, match="Did you mean 'builtin:general'"):
        builtin_items("genral")


def test_open_prompts_file() -> None:
    entry = resources.files("personae") / "data" / "prompts" / "open.yaml"
    data = yaml.safe_load(entry.read_text(encoding="utf-8"))
    prompts = data["prompts"]
    assert len(prompts) >= 12
    ids = [p["id"] for p in prompts]
    assert len(set(ids)) == len(ids)
    assert all(isinstance(p["text"], str) and p["text"].strip() for p in prompts)
    assert sum(i.startswith("opinion-") for i in ids) >= 4


# ---------------------------------------------------------------- fixtures in benchmark layouts

def test_mmlu_pro_fixture() -> None:
    items = load_items(DATA / "mmlu_pro_sample.jsonl", "mmlu-pro")
    assert [it.id for it in items] == ["90001", "90002", "90003"]
    assert [it.answer for it in items] == [2, 3, 0]
    assert [len(it.choices) for it in items] == [10, 4, 7]
    assert items[0].answer_letter == "C" and items[0].choices[2] == "zorpons"
    # categories are mapped onto the expert personas' vocabulary; the original is kept
    assert [it.domain for it in items] == ["physics", "mathematics", "computer-science"]
    assert items[2].metadata["category"] == "computer science"
    assert all(it.source == "mmlu-pro" for it in items)


def test_mmlu_pro_letter_answer_without_index(tmp_path: Path) -> None:
    rec = {"question_id": 1, "question": "q?", "options": list("abcdefghij"), "answer": "J", "category": "law"}
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps(rec) + "\n", encoding="utf-8")
    (item,) = load_items(path, "mmlu-pro")
    assert item.answer == 9 and item.domain == "law"


def test_gpqa_fixture_answer_points_to_correct_text() -> None:
    items = load_items(DATA / "gpqa_sample.csv", "gpqa", seed=3)
    correct = ["dravium", "silver, with a blue fin", "three"]
    assert [it.id for it in items] == ["recSYNTH00001", "recSYNTH00002", "recSYNTH00003"]
    for it, text in zip(items, correct):
        assert it.choices[it.answer] == text
        assert len(it.choices) == 4
    assert [it.domain for it in items] == ["chemistry", "biology", "physics"]
    assert items[0].metadata["subdomain"] == "Invented Chemistry"


def test_gpqa_shuffle_is_seeded() -> None:
    path = DATA / "gpqa_sample.csv"
    a = [it.choices for it in load_items(path, "gpqa", seed=7)]
    b = [it.choices for it in load_items(path, "gpqa", seed=7)]
    assert a == b
    orders = {tuple(tuple(c) for c in (it.choices for it in load_items(path, "gpqa", seed=s))) for s in range(20)}
    assert len(orders) > 1, "different seeds should give different option orders"
    # the correct answer does not always sit in the first place
    positions = {it.answer for s in range(20) for it in load_items(path, "gpqa", seed=s)}
    assert len(positions) > 1


def test_chaosnli_fixture_human_distribution() -> None:
    items = load_items(DATA / "chaosnli_sample.jsonl", "chaosnli")
    assert [it.id for it in items] == ["synth-nli-1", "synth-nli-2", "synth-nli-3"]
    assert all(it.choices == ("entailment", "neutral", "contradiction") for it in items)
    assert [it.answer for it in items] == [0, 1, 2]
    assert items[0].human_distribution() == pytest.approx([0.62, 0.35, 0.03])
    assert items[1].human_distribution() == pytest.approx([0.08, 0.80, 0.12])
    assert items[2].human_distribution() == pytest.approx([0.01, 0.09, 0.90])
    raw = [json.loads(line) for line in (DATA / "chaosnli_sample.jsonl").read_text().splitlines()]
    for it, rec in zip(items, raw):
        assert it.human_distribution() == pytest.approx(rec["label_dist"])
        assert rec["example"]["premise"] in it.question and rec["example"]["hypothesis"] in it.question


def test_csv_fixture() -> None:
    items = load_items(DATA / "items_sample.csv")
    assert [it.id for it in items] == ["csv-01", "csv-02", "csv-03"]
    assert [it.answer for it in items] == [1, 1, 2]
    assert items[1].choices[1] == "Norrin, the Lesser"
    assert len(items[2].choices) == 3  # an empty D column means three options
    assert load_items(DATA / "items_sample.csv", "csv") == items


def test_csv_with_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffid,domain,question,A,B,answer\nc1,physics,q?,x,y,B\n".encode())
    (item,) = load_items(path)
    assert item.id == "c1" and item.answer == 1


def test_answer_forms() -> None:
    base = {"id": "x", "domain": "d", "question": "q", "choices": ["red", "green", "blue"]}
    assert MCItem.model_validate({**base, "answer": "b"}).answer == 1
    assert MCItem.model_validate({**base, "answer": "blue"}).answer == 2
    assert MCItem.model_validate({**base, "answer": 0}).answer == 0
    assert MCItem.model_validate({**base, "answer": "1"}).answer == 1
    assert MCItem.model_validate(base).answer is None
    assert MCItem.model_validate({**base, "answer": "C"}).render().endswith("C. blue")


def test_normalize_domain() -> None:
    assert normalize_domain("Computer Science") == "computer-science"
    assert normalize_domain("math") == "mathematics"
    assert normalize_domain("health") == "medicine"
    assert normalize_domain("", "science") == "science"
    assert set(LETTERS[:4]) == set("ABCD")


# ---------------------------------------------------------------- errors name the file

def _record(**over: object) -> dict[str, object]:
    rec: dict[str, object] = {"id": "ok", "domain": "physics", "question": "q?", "choices": ["a", "b", "c", "d"],
                              "answer": "A"}
    rec.update(over)
    return rec


def test_bad_answer_letter_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bank.jsonl"
    path.write_text(json.dumps(_record()) + "\n\n" + json.dumps(_record(id="bad", answer="E")) + "\n",
                    encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_items(path)
    err = info.value
    assert err.file == str(path) and str(path) in str(err)
    assert err.line == 3
    assert "answer" in (err.field or "")


def test_answer_index_out_of_range(tmp_path: Path) -> None:
    path = tmp_path / "bank.jsonl"
    path.write_text(json.dumps(_record(answer=7)) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="outside the 4 choices") as info:
        load_items(path)
    assert info.value.file == str(path)


def test_unknown_field_in_yaml(tmp_path: Path) -> None:
    path = tmp_path / "bank.yaml"
    path.write_text(yaml.safe_dump({"items": [_record(), _record(id="two", anwser="B")]}), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_items(path)
    assert info.value.file == str(path)
    assert "answer" in str(info.value)  # the did-you-mean


def test_duplicate_ids(tmp_path: Path) -> None:
    path = tmp_path / "bank.jsonl"
    path.write_text(json.dumps(_record()) + "\n" + json.dumps(_record()) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="appears twice") as info:
        load_items(path)
    assert info.value.file == str(path)


def test_mmlu_pro_missing_options(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps({"question_id": 1, "question": "q?", "answer": "A"}) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="options") as info:
        load_items(path, "mmlu-pro")
    assert info.value.file == str(path) and info.value.line == 1


def test_chaosnli_record_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text('{"uid": "1", "example": {"premise": "p", "hypothesis": "h"}}\n["oops"]\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_items(path, "chaosnli")
    assert info.value.file == str(path) and info.value.line == 2


def test_gpqa_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "g.csv"
    path.write_text("Question,Correct Answer,Incorrect Answer 1\nq?,a,b\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="Incorrect Answer 2") as info:
        load_items(path, "gpqa")
    assert info.value.file == str(path)


def test_csv_bad_answer_names_line(tmp_path: Path) -> None:
    path = tmp_path / "i.csv"
    path.write_text('id,domain,question,A,B,answer\nc1,d,q,a,b,A\nc2,d,"two\nlines",a,b,Q\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_items(path)
    assert info.value.file == str(path) and info.value.line == 3


def test_csv_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "l.csv"
    path.write_bytes("id,domain,question,A,B,answer\nc1,d,caf\xe9,a,b,A\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="UTF-8") as info:
        load_items(path)
    assert info.value.file == str(path)


def test_unknown_suffix_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="item layout"):
        load_items(tmp_path / "items.txt")
    with pytest.raises(ConfigError, match="not found"):
        load_items(tmp_path / "absent.csv")
    with pytest.raises(ConfigError, match="not found"):
        load_items(tmp_path / "absent.jsonl")


def test_empty_csv(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text("id,domain,question,A,B,answer\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="no items"):
        load_items(path)


# ---------------------------------------------------------------- published layouts (issue 7)

def test_chaosnli_alphanli_file_loads_as_two_option_items_with_human_labels() -> None:
    path = DATA / "chaosnli_alphanli_sample.jsonl"
    items = load_items(path, "chaosnli")
    assert load_items(path) == items  # items_format: auto finds the layout from the fields
    raw = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [it.id for it in items] == [r["uid"] for r in raw]
    for it, rec in zip(items, raw):
        ex = rec["example"]
        assert it.choices == (ex["hyp1"], ex["hyp2"]) and it.letters == "AB"
        assert ex["obs1"] in it.question and ex["obs2"] in it.question
        assert "Which hypothesis best explains" in it.question
        assert it.answer == rec["majority_label"] - 1
        # the published label_dist is in label order [1, 2]: options A, B
        assert it.human_distribution() == pytest.approx(rec["label_dist"])
        assert it.domain == "abductive-nli" and it.source == "chaosnli-alphanli"


def test_chaosnli_alphanli_record_missing_a_hypothesis_names_the_layout(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps({"uid": "x", "label_counter": {"1": 3}, "example": {"obs1": "o", "obs2": "p",
                                                                                 "hyp1": "h"}}) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="lacks the field 'hyp2' of the chaosnli alphaNLI") as info:
        load_items(path, "chaosnli")
    assert info.value.line == 1


def test_auto_detects_mmlu_pro_rows_by_their_fields() -> None:
    path = DATA / "mmlu_pro_sample.jsonl"
    items = load_items(path)  # items_format: auto, a .jsonl file of MMLU-Pro's own rows
    assert items == load_items(path, "mmlu-pro")
    assert [it.domain for it in items] == ["physics", "mathematics", "computer-science"]
    assert [it.answer for it in items] == [2, 3, 0]
    cats = load_items(DATA / "mmlu_pro_categories.jsonl")
    assert len(cats) == 14 and all(it.source == "mmlu-pro" for it in cats)


def test_auto_detects_chaosnli_and_gpqa() -> None:
    assert load_items(DATA / "chaosnli_sample.jsonl") == load_items(DATA / "chaosnli_sample.jsonl", "chaosnli")
    assert load_items(DATA / "gpqa_sample.csv", seed=3) == load_items(DATA / "gpqa_sample.csv", "gpqa", seed=3)
    # personae's own layouts are not mistaken for a benchmark's
    assert [it.id for it in load_items(DATA / "items_sample.csv")] == ["csv-01", "csv-02", "csv-03"]
