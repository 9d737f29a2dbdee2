"""The context cue families of the learned layer (downfall, punish_call, officials_loose) and their combination:
each counts only when an official is named too, so a reaction to an official's downfall scores and the same words
about a game, a thief, an athlete or a foreign official do not. Sentences are ours, not from the shared data."""

from __future__ import annotations

import pytest
from qingfeng.text import Enricher, Relevance
from qingfeng.text.relevance import RelevanceScorer

COMBO = "combo:official_downfall"


def _reason(relevance: Relevance, criterion: str) -> tuple[float, tuple[str, ...]] | None:
    found = [r for r in relevance.reasons if r.criterion == criterion]
    return (found[0].weight, found[0].evidence) if found else None


def test_the_context_families_have_no_weight_of_their_own(enricher: Enricher) -> None:
    model = RelevanceScorer(enricher.lexicons).model
    assert model is not None
    for family in ("downfall", "punish_call", "officials_loose"):
        assert family not in model.cue_weights
    assert any(name == "official_downfall" and weight > 0 for name, weight, _ in model.combos)


@pytest.mark.parametrize(
    ("text", "words", "floor"),
    [
        # with a title of the lexicon the official criterion adds its own weight: past the routing threshold (0.5)
        ("又一个副局长倒台了，大快人心", {"副局长", "倒台"}, 0.5),  # downfall + a title
        ("这种局长就该严查到底，绳之以法", {"局长", "严查"}, 0.5),  # punish_call + a title
        # an official in everyday words with a downfall word: the combination alone, some evidence (0.45 as fitted)
        ("那些大官一个个都落网了", {"大官", "落网"}, 0.3),
    ],
)
def test_a_reaction_to_an_officials_downfall_scores_with_the_combination(
    enricher: Enricher, text: str, words: set[str], floor: float
) -> None:
    relevance = enricher.enrich(text).relevance
    combo = _reason(relevance, COMBO)
    assert combo is not None, relevance
    weight, evidence = combo
    assert weight > 0 and words <= set(evidence), evidence
    assert relevance.score >= floor, relevance
    # without the official the same words are no evidence: the combination is what lifts it
    assert (
        relevance.score
        > enricher.enrich(text.replace(next(iter(words & {"副局长", "局长", "大官"})), "")).relevance.score
    )


@pytest.mark.parametrize(
    "text",
    [
        "打游戏的时候一枪就把他干掉了，大快人心",  # downfall words in a game
        "偷电动车的小偷一定要严惩，最好判刑",  # punish_call about a thief
        "卫冕冠军在第二轮爆冷落马，对手的球迷大呼大快人心",  # an athlete's 落马 (suppressed) with a downfall word
        "日本官员因违规被判刑",  # a foreign official (suppressed) with a punishment word
        "铲屎官今天把猫粮藏起来了",  # 官 in another sense
    ],
)
def test_hard_negatives_with_downfall_or_punishment_words_stay_low(enricher: Enricher, text: str) -> None:
    relevance = enricher.enrich(text).relevance
    assert _reason(relevance, COMBO) is None, relevance
    assert not any(
        r.criterion.startswith(("cue:downfall", "cue:punish_call", "cue:officials_loose")) for r in relevance.reasons
    )
    assert relevance.score < 0.5, relevance
