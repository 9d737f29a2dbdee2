"""The learned layer of the relevance score: its data file, how it scores and explains, and the fit's pieces."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from qingfeng.text import Enricher, LexiconError
from qingfeng.text.relevance import POOLED, SCAN_WINDOW, RelevanceScorer
from qingfeng.text.relevance_model import BUILTIN_MODEL, MARKER, load_model

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "bench"))

import relevance_eval  # noqa: E402
import relevance_fit  # noqa: E402


def test_builtin_model_is_fitted_for_the_builtin_policy_and_these_labels(enricher: Enricher) -> None:
    model = RelevanceScorer(enricher.lexicons).model
    assert model is not None
    assert model.policy_version == enricher.lexicons.relevance.version
    digest = relevance_eval.labels_sha256(relevance_eval.DEFAULT_LABELS, relevance_eval.DEFAULT_WRITTEN)
    # the weights and the calibration map were fitted on the label files as committed, calibrate half
    assert f"sha256 {digest[:12]}, split calibrate" in model.source
    assert f"sha256 {digest[:12]}" in enricher.lexicons.relevance.calibration_source
    assert all(w >= 0 for w in model.criteria.values()) and all(w >= 0 for w in model.cue_weights.values())
    assert 0 < len(model.ngrams) <= 1000


def test_a_cue_word_is_a_reason_with_its_evidence(enricher: Enricher) -> None:
    relevance = enricher.enrich("红会的钱到底去哪了").relevance
    cue = [r for r in relevance.reasons if r.criterion == "cue:charity"]
    assert cue and cue[0].evidence == ("红会",) and cue[0].weight > 0
    assert relevance.score > 0


def test_ngrams_alone_are_no_reason_for_a_score(enricher: Enricher) -> None:
    model = RelevanceScorer(enricher.lexicons).model
    assert model is not None
    rules = RelevanceScorer(enricher.lexicons, model=None)
    alone = []
    for gram, weight in model.ngrams.items():
        tags = enricher.tagger.tag(gram)
        if weight > 0 and not rules.score(tags, gram).reasons and set(model.matches(gram)) == {f"ngram:{gram}"}:
            alone.append((gram, enricher.enrich(gram).relevance))
    assert alone, "some n-gram for relevance is neither a lexicon term nor a cue word"
    assert all(r.score == 0.0 and r.reasons == () for _, r in alone), alone
    assert enricher.enrich("今天天气不错，和朋友去公园散步").relevance.score == 0.0


def test_the_shared_corruption_weight_fires_with_any_category(enricher: Enricher) -> None:
    relevance = enricher.enrich("某局长挪用公款").relevance
    shared = [r for r in relevance.reasons if r.criterion == POOLED]
    assert shared and "挪用公款" in shared[0].evidence


@pytest.mark.parametrize(
    ("base", "extra"), [("县长视察学校", "，李刚"), ("市长受贿", "，红会"), ("官员", "，官官相护")]
)
def test_a_cue_word_never_lowers_the_score(enricher: Enricher, base: str, extra: str) -> None:
    # cue and criterion weights are fitted >= 0; the n-grams the extra words bring could pull the other way, so
    # the test adds words whose n-grams are cue words themselves (cue words win over n-grams spelled alike)
    assert enricher.enrich(base + extra).relevance.score >= enricher.enrich(base).relevance.score


def test_the_learned_scans_stop_at_the_window(enricher: Enricher) -> None:
    near = enricher.enrich("红会的钱" + "。" * 10).relevance
    far = enricher.enrich("。" * SCAN_WINDOW + "红会的钱").relevance
    assert any(r.criterion == "cue:charity" for r in near.reasons)
    assert not any(r.criterion == "cue:charity" for r in far.reasons)


def test_a_model_for_another_policy_is_not_applied(enricher: Enricher, tmp_path: Path) -> None:
    text = BUILTIN_MODEL.read_text(encoding="utf-8").replace('policy_version: "', 'policy_version: "other-', 1)
    path = tmp_path / "m.yaml"
    path.write_text(text, encoding="utf-8")
    assert RelevanceScorer(enricher.lexicons, model=load_model(path)).model is None


def _model(tmp_path: Path, body: str) -> Path:
    head = BUILTIN_MODEL.read_text(encoding="utf-8").split(MARKER, 1)[1]
    fit = head.split("bias:", 1)[0]
    text = textwrap.dedent(
        """\
        kind: relevance_model
        version: "t"
        policy_version: "p"
        cues:
          charity: {label: charity, words: [红会]}
          kin: {label: kin, words: [李刚]}
        """
    )
    path = tmp_path / "model.yaml"
    path.write_text(text + fit + textwrap.dedent(body), encoding="utf-8")
    return path


def test_a_valid_model_file_loads(tmp_path: Path) -> None:
    model = load_model(
        _model(tmp_path, 'bias: -1\ncriteria: {official: 0.5}\ncue_weights: {charity: 1}\nngrams: {"当官": 0.3}\n')
    )
    assert model.matches("当官的拿了红会的钱，当官的") == {"ngram:当官": ["当官"], "cue:charity": ["红会"]}
    assert model.weight("cue:charity") == 1.0 and model.weight("ngram:当官") == 0.3


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ("bias: -1\ncue_weights: {charity: -1}\n", "cue_weights.charity", "greater than or equal"),
        ("bias: -1\ncriteria: {official: -0.5}\n", "criteria.official", "greater than or equal"),
        ("bias: -1\ncriteria: {Official!: 0.5}\n", "criteria", "not a criterion name"),
        ('bias: -1\nngrams: {"当官的人": 0.3}\n', "ngrams", "2-3 characters"),
        ('bias: -1\nngrams: {"當官": 0.3}\n', "ngrams", "simplified"),
        ("bias: -1\ncue_weights: {nobody: 1}\n", "cue_weights.nobody", "no cue family"),
        ("bias: .nan\n", "bias", ""),
        ("bias: -1\nextra: 1\n", "extra", "not permitted"),
        ("bias: -1\ncombo_weights: {nobody: 1}\n", "combo_weights.nobody", "no combination"),
        ("bias: -1\ncombos: {c: {label: c, groups: [[cue:nobody], [official]]}}\n", "combos.c.groups[0][0]", "no cue"),
        ("bias: -1\ncombos: {c: {label: c, groups: [[Official!], [cue:kin]]}}\n", "combos.c.groups[0][0]", "neither"),
        ("bias: -1\ncombos: {c: {label: c, groups: [[cue:kin]]}}\n", "combos.c.groups", "at least 2"),
    ],
)
def test_bad_model_files_are_refused_with_file_and_field(tmp_path: Path, body: str, field: str, message: str) -> None:
    path = _model(tmp_path, body)
    with pytest.raises(LexiconError) as caught:
        load_model(path)
    assert caught.value.path == str(path)
    assert caught.value.field.startswith(field), caught.value
    assert message in str(caught.value)


def test_a_word_in_two_cue_families_is_refused(tmp_path: Path) -> None:
    path = _model(tmp_path, "bias: -1\n")
    path.write_text(path.read_text(encoding="utf-8").replace("words: [李刚]", "words: [李刚, 红会]"), encoding="utf-8")
    with pytest.raises(LexiconError) as caught:
        load_model(path)
    assert caught.value.field == "cues.kin.words[1]"


def test_a_combination_fires_when_every_group_has_a_member(tmp_path: Path) -> None:
    path = _model(
        tmp_path,
        "bias: -1\ncue_weights: {charity: 1}\ncombos: {kin_charity: {label: k, groups: [[cue:kin, official], "
        "[cue:charity]]}}\ncombo_weights: {kin_charity: 2}\n",
    )
    model = load_model(path)
    both = {"cue:kin": ("李刚",), "cue:charity": ("红会",)}
    assert model.combined(both) == [("combo:kin_charity", 2.0, ("李刚", "红会"))]
    assert model.combined({"official": ("局长",), "cue:charity": ("红会",)})[0][2] == ("局长", "红会")
    assert model.combined({"cue:charity": ("红会",)}) == []


def test_a_context_family_may_not_carry_a_weight_of_its_own(tmp_path: Path) -> None:
    path = _model(tmp_path, "bias: -1\ncue_weights: {kin: 1}\n")
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            "{label: kin, words: [李刚]}", "{label: kin, alone: false, words: [李刚]}"
        ),
        encoding="utf-8",
    )
    with pytest.raises(LexiconError) as caught:
        load_model(path)
    assert caught.value.field == "cue_weights.kin" and "alone: false" in str(caught.value)


def test_logistic_fit_learns_the_informative_feature_and_keeps_signs() -> None:
    # feature 0 marks the positives, feature 1 the negatives; feature 1 may not go below 0, feature 2 may
    rows = [[0], [0], [0], [1, 2], [1, 2], [1, 2], [], []]
    labels = [1, 1, 1, 0, 0, 0, 0, 1]
    weights, bias = relevance_fit.fit_logistic(rows, labels, 3, l2=0.01, signed={2})
    assert weights[0] > 1.0
    assert weights[1] == 0.0  # held at its bound
    assert weights[2] < -0.5
    assert -1.0 < bias < 1.0


def test_ngram_selection_prefers_separating_grams_and_skips_particles() -> None:
    texts = ["贪官落马了", "贪官又被抓了", "贪官倒台", "今天吃饭了", "明天吃饭", "一起吃饭了"]
    labels = [1, 1, 1, 0, 0, 0]
    grams = relevance_fit.select_ngrams(texts, labels, cap=4, min_df=3)
    assert "贪官" in grams and "吃饭" in grams
    assert not any("了" in g for g in grams)


def test_the_automaton_finds_what_the_regex_finds(enricher: Enricher) -> None:
    model = RelevanceScorer(enricher.lexicons).model
    assert model is not None
    finder = model.finder
    fixture = REPO / "tests" / "fixtures" / "long_texts" / "articles.jsonl"
    texts = [line for line in fixture.read_text(encoding="utf-8").splitlines() if line.strip()]
    texts += [
        "红会的钱",
        "中国红会真的是不能要了，当官的李天一",
        "警车私用" * 20,
        "官\ud800员红会",
    ]  # a lone surrogate too
    for text in texts:
        for head in (text, text[:15], text[:300]):
            assert finder.all(head) == finder.regex_all(head), head[:40]
    long = "这是一条很长的帖子，说的是红会的钱到底去了哪里"  # >= 16 characters: the automaton's path
    assert len(long) >= 16 and "红会" in finder.all(long)
