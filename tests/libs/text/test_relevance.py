from __future__ import annotations

import pytest
from qingfeng.text import Enricher
from qingfeng.text.relevance import RelevanceScorer, calibrate
from qingfeng.text.relevance_model import sigmoid

CORRUPT = "临沂市委书记贪污受贿被双规，数百名群众聚集上访"
NEUTRAL = "今天天气不错，和朋友去公园散步"


def test_corruption_post_ranks_above_neutral(enricher: Enricher) -> None:
    corrupt, neutral = enricher.enrich(CORRUPT).relevance, enricher.enrich(NEUTRAL).relevance
    assert neutral.score == 0.0 and neutral.reasons == ()
    assert corrupt.score > 0.9


@pytest.mark.parametrize(
    "ordered",
    [
        # each line adds evidence, so each must score at least as high as the one before
        ["今天天气不错", "市长视察工作", "市长受贿", "广州市长受贿", "广州市长受贿，群众聚集上访"],
        ["有人拉横幅", "有人拉横幅抗议贪污"],
    ],
)
def test_more_evidence_never_lowers_the_score(enricher: Enricher, ordered: list[str]) -> None:
    scores = [enricher.enrich(t).relevance.score for t in ordered]
    assert scores == sorted(scores)
    assert scores[0] < scores[-1]


def test_reasons_explain_the_score(enricher: Enricher) -> None:
    relevance = enricher.enrich("广州市公安局长受贿，群众聚集").relevance
    reasons = {r.criterion: r for r in relevance.reasons}
    # the policy's criteria that carry weight in the learned layer, the shared corruption weight among them
    assert {"corruption", "corruption:bribery_taking", "official", "official_corruption"} <= set(reasons)
    assert reasons["corruption:bribery_taking"].evidence == ("受贿",)
    assert reasons["corruption"].evidence == ("受贿",)
    assert reasons["official_corruption"].evidence == ("公安局长",)
    weights = [r.weight for r in relevance.reasons]
    assert weights == sorted(weights, reverse=True)
    model = RelevanceScorer(enricher.lexicons).model
    assert model is not None
    # the raw score is the model's probability over exactly these reasons; the score is the policy's map of it
    assert relevance.raw == pytest.approx(sigmoid(model.bias + sum(weights)), abs=1e-3)
    assert relevance.score == pytest.approx(calibrate(enricher.lexicons.relevance.calibration, relevance.raw), abs=1e-4)
    assert 0 < relevance.score < 1


def test_without_the_learned_layer_the_raw_score_is_the_noisy_or(enricher: Enricher) -> None:
    scorer = RelevanceScorer(enricher.lexicons, model=None)
    text = "广州市公安局长受贿，群众聚集"
    relevance = scorer.score(enricher.tagger.tag(text), text)
    assert {r.criterion for r in relevance.reasons} == {
        "corruption:bribery_taking",
        "official",
        "official_corruption",
        "offline",
        "offline_corruption",
        "region",
        "region_corruption",
    }
    remaining = 1.0
    for reason in relevance.reasons:
        remaining *= 1 - reason.weight
    assert relevance.raw == pytest.approx(1 - remaining, abs=1e-3)


def test_officials_alone_score_low(enricher: Enricher) -> None:
    # some evidence, but below the lower of the policy thresholds (the coordinator's 0.5)
    assert 0 < enricher.enrich("县长今天视察了学校").relevance.score < 0.5
