"""The tuning of event detection (clustering.py): every limit bounds memory or work per post."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ClusteringConfig"]


@dataclass(frozen=True, slots=True)
class ClusteringConfig:
    """Tuning of event detection; every limit bounds memory or work per post."""

    near_dup_max_hamming: int = 3
    # A near duplicate or shared keywords link a post without a parent only when its text has this many
    # keywords (short texts such as "太可怕了" or "关注后续进展，希望依法处理" recur in every event), and
    # near duplicates only within this window.
    near_dup_min_keywords: int = 6
    text_window_seconds: float = 6 * 3600.0
    # Text evidence of a post that parent links already placed may also merge the event it points to.
    merge_on_text: bool = False
    # May a post without parent links (an original) join an event by text at all? Off while the stream
    # carries repost parents: a cascade is then the unit of an event, and originals joining by text merged
    # distinct cascades (the same rumour posted anew by others) in 64 of 861 events of the Weibo development
    # set replayed concurrently over 24 h (B-cubed precision 0.926 instead of 1.0). On in for_lost_parents().
    originals_by_text: bool = False
    # A post with no usable words and no link opens an event of its own (True: later reposts may name it
    # as their parent) or joins none (False: nothing could ever link to it) unless it was reposted or
    # commented itself (its own counts make it an event).
    attach_wordless: bool = True
    # Posts with fewer distinct keywords carry too little text for SimHash or keyword matching
    # (Weibo's "转发微博", emoji-only replies …).
    min_text_keywords: int = 4
    # A near duplicate only merges two events when the text is at least this rich.
    merge_min_keywords: int = 8
    # A fingerprint matching this many different events is boilerplate, not evidence.
    near_dup_max_events: int = 3
    keyword_window_seconds: float = 6 * 3600.0
    keyword_min_score: float = 0.5
    keyword_min_shared: int = 3
    keyword_top_n: int = 12
    # Rare shared terms with an anchor: a post without parent links joins the *anchor* event (opened by a post others
    # reposted or commented on at least `anchor_min_engagement` times: a cascade's source post) active within
    # `rare_window_seconds` with which it shares rare terms (each in at most `rare_max_df` of the posts seen), when
    # that anchor's shared idf weight is at least `rare_margin` times any other recent anchor's; and either
    # `rare_min_shared` terms, or one term seen at most `rare_single_max_count` times before, or one the anchor itself
    # holds at least `rare_own_share` of (twice or more). A term is shared with an anchor when its posts used it as a
    # keyword within the window, or when the text of its source post (opened within the window) contains it: the
    # collector lists at most eight keywords of a post, and a reply names a long source post's places, people and
    # objects ("转基因", "北约", "万源") in its own words, so it rarely shares three keywords with it; one rare term
    # of the one recent cascade that uses it is evidence, a common word is not, nor a term two recent cascades use
    # about as much. A post that is itself an anchor (reposted or commented on that often) is a cascade's source and
    # takes no rare-term link: two sources of the same story stay two events, as with parents. Rarity means
    # something only once the document frequencies have seen `rare_min_docs` posts. 0 s disables the link (the
    # default: with parent links a cascade is the unit); on in for_lost_parents(). Chosen on the calibration half
    # of the concurrent replay (README, "Grading on a concurrent stream"): source texts, the margin 1.5 (was: no
    # other anchor at all), df 0.5 % (0.1 %), a single term seen up to 3 times (1), warm-up 1,000 posts (2,500)
    # and no link for anchors: text F1 0.283 -> 0.326 on both seeds (text precision 0.992 -> 0.97).
    rare_window_seconds: float = 0.0
    rare_max_df: float = 0.005
    rare_min_docs: int = 1000
    rare_min_shared: int = 2
    rare_single_max_count: int = 3
    rare_own_share: float = 0.5
    rare_margin: float = 1.5
    anchor_min_engagement: int = 10
    # May a post that is itself a cascade's source (reposted or commented on `anchor_min_engagement` times or more)
    # join another event by shared keywords? Off in for_lost_parents(): shared keywords between two sources mean
    # two sources of the same story ("李天一 … 律师团 … 轮奸" posted anew by several accounts), not one cascade;
    # with parents they stay two events, and the rare-term link already refuses anchors. Near duplicates (copies of
    # the text) still link. Chosen on the calibration half (see for_lost_parents()).
    sources_join_by_keywords: bool = True
    # Only the first keywords of a post are read (the collector lists the most salient first).
    max_keywords: int = 32
    # Keywords in more than this share of posts are too common to link anything (once df is meaningful).
    keyword_max_df: float = 0.01
    df_min_docs: int = 500
    df_halve_every: int = 200_000
    postings_cap: int = 32
    band_cap: int = 64
    fingerprints_cap: int = 64
    profile_cap: int = 200
    horizon_seconds: float = 7 * 86400.0
    redirect_ttl_seconds: float = 30 * 86400.0
    # Weak signals for posts that nothing else placed (no known parent, no text match): the author's own
    # recent event, or the event that clearly dominates the recent stream (a decayed post rate with
    # `activity_half_life_seconds`, at least `activity_min` and `activity_share` of all recent activity).
    # They suit a stream of reposts whose parent links were lost; a window of 0 disables each.
    author_window_seconds: float = 0.0
    activity_window_seconds: float = 0.0
    activity_half_life_seconds: float = 600.0
    activity_min: float = 2.0
    activity_share: float = 0.5
    # Posts with fewer keywords than this take the weak signals even when they have some text, and only
    # events opened by a post with at least this many can attract by activity (0: any post, any event).
    seed_min_keywords: int = 0
    title_chars: int = 60

    @classmethod
    def for_lost_parents(cls) -> ClusteringConfig:
        """For a stream whose repost parent links are lost: text evidence only (rare shared terms with a cascade's
        source post included), and a post with no usable words joins no event (no parent can ever name it, and
        guessing "the busiest event" lumps unrelated posts together once many events run at once). The weak
        signals stay off. A cascade's source is a post reposted or commented on at least 100 times (10 made sources of
        answers that drew a few reactions, which then took no rare-term link), and a source joins no other event by
        shared keywords (other sources of its story share them). Chosen on the calibration half, seeds 1-4 (README,
        "Grading on a concurrent stream"): Spearman 0.626 / 0.606 / 0.612 / 0.633 -> 0.662 / 0.637 / 0.640 / 0.651,
        text F1 0.326 / 0.326 / 0.328 / 0.321 -> 0.332 / 0.334 / 0.335 / 0.328."""
        return cls(
            attach_wordless=False,
            originals_by_text=True,
            rare_window_seconds=1800.0,
            anchor_min_engagement=100,
            sources_join_by_keywords=False,
        )

    @classmethod
    def with_weak_signals(cls) -> ClusteringConfig:
        """The author/recent-activity guesses for posts without text (the former `for_lost_parents`). They
        only help when events follow one another; on a concurrent stream they lump. Kept for comparison."""
        return cls(
            originals_by_text=True,
            activity_window_seconds=1800.0,
            activity_half_life_seconds=300.0,
            activity_min=0.3,
            activity_share=0.0,
            seed_min_keywords=4,
        )
