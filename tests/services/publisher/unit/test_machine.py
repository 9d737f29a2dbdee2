"""Every transition of the draft state machine, and every refused one, as tables."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.publisher.adapters.policy_yaml import load_policies
from services.publisher.core import machine
from services.publisher.core.model import Actor, Decision, Draft, DraftStatus, Kind, Publication, PublicationStatus
from services.publisher.errors import (
    AlreadySigned,
    ConcurrentModification,
    InvalidArgument,
    InvalidState,
    NotSignedOff,
    PermissionDenied,
    PublisherError,
)

S = DraftStatus
NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
POLICY = load_policies().signoff
AUTHOR = Actor("writer", "opinion_office", frozenset({"舆情信息办公室主任"}))
DIRECTOR = Actor("director", "opinion_office", frozenset({"舆情信息办公室主任"}))
DEPUTY = Actor("deputy", "discipline_commission", frozenset({"分管常委"}))
BOTH = Actor("both", "discipline_commission", frozenset({"舆情信息办公室主任", "分管常委"}))
SECRETARY = Actor("secretary", "discipline_commission", frozenset({"纪委书记"}))


def fresh(level: str = "yellow") -> Draft:
    return machine.new_draft(
        id="d1", case_id="c1", kind=Kind.STATEMENT, author=AUTHOR, now=NOW, title="标题", body="正文。",
        level=level, channel_ids=["weibo-qingfeng"],
    )  # fmt: skip


def pending(level: str = "yellow") -> Draft:
    return machine.submit(fresh(level), AUTHOR, POLICY, NOW)


def approved() -> Draft:
    d = machine.sign_off(pending(), DIRECTOR, Decision.APPROVED, "", 1, NOW)
    return machine.sign_off(d, DEPUTY, Decision.APPROVED, "同意", 1, NOW)


def rejected() -> Draft:
    return machine.sign_off(pending(), DIRECTOR, Decision.REJECTED, "口径不准确", 1, NOW)


def scheduled() -> Draft:
    return machine.schedule(approved(), NOW + timedelta(hours=1), [], NOW)


def publishing() -> Draft:
    return machine.start_publishing(approved(), [], NOW)


def in_status(status: DraftStatus) -> Draft:
    builders = {
        S.DRAFT: fresh, S.PENDING_APPROVAL: pending, S.APPROVED: approved, S.REJECTED: rejected,
        S.SCHEDULED: scheduled, S.PUBLISHING: publishing,
    }  # fmt: skip
    if status in builders:
        return builders[status]()
    return replace(publishing(), status=status)


# (status before, action, expected status after)
ALLOWED = [
    (S.DRAFT, "submit", S.PENDING_APPROVAL),
    (S.REJECTED, "submit", S.PENDING_APPROVAL),
    (S.DRAFT, "edit", S.DRAFT),
    (S.REJECTED, "edit", S.DRAFT),
    (S.PENDING_APPROVAL, "edit", S.PENDING_APPROVAL),
    (S.APPROVED, "edit", S.PENDING_APPROVAL),
    (S.SCHEDULED, "edit", S.PENDING_APPROVAL),
    (S.PENDING_APPROVAL, "approve", S.PENDING_APPROVAL),
    (S.PENDING_APPROVAL, "reject", S.REJECTED),
    (S.APPROVED, "schedule", S.SCHEDULED),
    (S.SCHEDULED, "schedule", S.SCHEDULED),
    (S.APPROVED, "publish", S.PUBLISHING),
    (S.SCHEDULED, "publish", S.PUBLISHING),
    (S.SCHEDULED, "came_due", S.PUBLISHING),
]

# (status, action, error raised)
REFUSED = [
    (S.PENDING_APPROVAL, "submit", InvalidState),
    (S.APPROVED, "submit", InvalidState),
    (S.SCHEDULED, "submit", InvalidState),
    (S.PUBLISHING, "submit", InvalidState),
    (S.PUBLISHED, "submit", InvalidState),
    (S.DRAFT, "approve", InvalidState),
    (S.REJECTED, "approve", InvalidState),
    (S.APPROVED, "approve", AlreadySigned),
    (S.SCHEDULED, "approve", AlreadySigned),
    (S.PUBLISHED, "approve", InvalidState),
    (S.DRAFT, "reject", InvalidState),
    (S.APPROVED, "reject", InvalidState),
    (S.PUBLISHING, "edit", InvalidState),
    (S.PUBLISHED, "edit", InvalidState),
    (S.PARTIALLY_FAILED, "edit", InvalidState),
    (S.FAILED, "edit", InvalidState),
    (S.RETRACTED, "edit", InvalidState),
    (S.DRAFT, "schedule", NotSignedOff),
    (S.PENDING_APPROVAL, "schedule", NotSignedOff),
    (S.REJECTED, "schedule", NotSignedOff),
    (S.PUBLISHING, "schedule", InvalidState),
    (S.PUBLISHED, "schedule", InvalidState),
    (S.DRAFT, "publish", NotSignedOff),
    (S.PENDING_APPROVAL, "publish", NotSignedOff),
    (S.REJECTED, "publish", NotSignedOff),
    (S.PUBLISHING, "publish", InvalidState),
    (S.PUBLISHED, "publish", InvalidState),
    (S.RETRACTED, "publish", InvalidState),
]


def act(draft: Draft, action: str) -> Draft:
    signer = DIRECTOR if draft.status is not S.PENDING_APPROVAL or machine.approved_steps(draft) == 0 else DEPUTY
    match action:
        case "submit":
            return machine.submit(draft, AUTHOR, POLICY, NOW)
        case "edit":
            return machine.edit(draft, AUTHOR, NOW, body=draft.body + "补充。")
        case "approve":
            return machine.sign_off(draft, signer, Decision.APPROVED, "", draft.revision, NOW)
        case "reject":
            return machine.sign_off(draft, signer, Decision.REJECTED, "不同意", draft.revision, NOW)
        case "schedule":
            return machine.schedule(draft, NOW + timedelta(hours=2), [], NOW)
        case "publish":
            return machine.start_publishing(draft, [], NOW)
        case "came_due":
            return machine.came_due(draft, NOW)
    raise AssertionError(action)


@pytest.mark.parametrize(("before", "action", "after"), ALLOWED, ids=[f"{b}-{a}" for b, a, _ in ALLOWED])
def test_allowed_transition(before: DraftStatus, action: str, after: DraftStatus) -> None:
    draft = in_status(before)
    moved = act(draft, action)
    assert moved.status is after
    assert moved.version == draft.version + 1


@pytest.mark.parametrize(("before", "action", "error"), REFUSED, ids=[f"{b}-{a}" for b, a, _ in REFUSED])
def test_refused_transition(before: DraftStatus, action: str, error: type[PublisherError]) -> None:
    with pytest.raises(error):
        act(in_status(before), action)


def test_every_status_has_a_refused_or_allowed_row_for_every_action() -> None:
    covered = {(b, a) for b, a, _ in ALLOWED} | {(b, a) for b, a, _ in REFUSED}
    for action in ("submit", "edit", "approve", "schedule", "publish"):
        assert any(a == action for _, a in covered)
    assert {b for b, _ in covered} == set(S)


def test_chain_follows_the_level() -> None:
    for level, roles in {
        "blue": ["舆情信息办公室主任"],
        "yellow": ["舆情信息办公室主任", "分管常委"],
        "orange": ["舆情信息办公室主任", "分管常委", "纪委书记"],
    }.items():
        assert [s.role for s in pending(level).chain] == roles


def test_the_last_approval_approves_and_each_step_is_recorded() -> None:
    one = machine.sign_off(pending(), DIRECTOR, Decision.APPROVED, "", 1, NOW)
    assert one.status is S.PENDING_APPROVAL and machine.next_step(one) is not None
    done = machine.sign_off(one, DEPUTY, Decision.APPROVED, "同意", 1, NOW + timedelta(minutes=5))
    assert done.status is S.APPROVED
    assert [(s.signer, s.decision, s.revision) for s in done.chain] == [
        ("director", Decision.APPROVED, 1),
        ("deputy", Decision.APPROVED, 1),
    ]
    assert done.chain[1].decided_at == NOW + timedelta(minutes=5)


def test_four_eyes_the_author_cannot_sign() -> None:
    with pytest.raises(PermissionDenied, match="four-eyes"):
        machine.sign_off(pending(), AUTHOR, Decision.APPROVED, "", 1, NOW)


def test_a_co_author_who_edited_cannot_sign_either() -> None:
    edited = machine.edit(pending(), DIRECTOR, NOW, body="改过的正文。")
    with pytest.raises(PermissionDenied):
        machine.sign_off(edited, DIRECTOR, Decision.APPROVED, "", edited.revision, NOW)


def test_signer_needs_the_role_of_the_next_step() -> None:
    with pytest.raises(PermissionDenied, match="must be signed by the role '舆情信息办公室主任'"):
        machine.sign_off(pending(), DEPUTY, Decision.APPROVED, "", 1, NOW)


def test_one_person_signs_one_step_only() -> None:
    one = machine.sign_off(pending(), BOTH, Decision.APPROVED, "", 1, NOW)
    with pytest.raises(AlreadySigned):
        machine.sign_off(one, BOTH, Decision.APPROVED, "", 1, NOW)


def test_rejection_needs_a_reason() -> None:
    with pytest.raises(InvalidArgument, match="reason"):
        machine.sign_off(pending(), DIRECTOR, Decision.REJECTED, "  ", 1, NOW)
    assert rejected().chain[0].comment == "口径不准确"


def test_signing_a_stale_revision_is_refused() -> None:
    edited = machine.edit(pending(), AUTHOR, NOW, body="新正文。")
    with pytest.raises(ConcurrentModification):
        machine.sign_off(edited, DIRECTOR, Decision.APPROVED, "", 1, NOW)


def test_edit_after_approval_resets_the_chain_and_bumps_the_revision() -> None:
    edited = machine.edit(approved(), AUTHOR, NOW, title="新标题")
    assert edited.status is S.PENDING_APPROVAL
    assert edited.revision == 2
    assert all(s.decision is None and s.signer is None for s in edited.chain)


def test_edit_of_channels_only_keeps_the_approval() -> None:
    edited = machine.edit(approved(), AUTHOR, NOW, channel_ids=["website-feed"])
    assert edited.status is S.APPROVED and edited.revision == 1 and edited.channel_ids == ("website-feed",)


def test_edit_with_a_stale_expected_revision_is_refused() -> None:
    with pytest.raises(ConcurrentModification):
        machine.edit(fresh(), AUTHOR, NOW, body="x", expected_revision=7)


def test_submit_needs_a_level_and_text() -> None:
    with pytest.raises(InvalidArgument, match="level"):
        machine.submit(fresh(level=""), AUTHOR, POLICY, NOW)
    with pytest.raises(InvalidArgument):
        machine.submit(replace(fresh(), body=" "), AUTHOR, POLICY, NOW)


def test_reply_needs_the_post_it_answers() -> None:
    with pytest.raises(InvalidArgument, match="reply_to_post_id"):
        machine.new_draft(id="r", case_id="c", kind=Kind.REPLY, author=AUTHOR, now=NOW, title="t", body="b")


def test_publishing_without_channels_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="channel"):
        machine.start_publishing(replace(approved(), channel_ids=()), [], NOW)


def pub(status: PublicationStatus, published_at: datetime | None = None) -> Publication:
    return Publication(id="p", draft_id="d1", case_id="c1", channel_id="x", due_at=NOW, status=status,
                       published_at=published_at)  # fmt: skip


P = PublicationStatus
SETTLE = [
    ([P.PENDING, P.PUBLISHED], S.PUBLISHING),
    ([P.PUBLISHED, P.PUBLISHED], S.PUBLISHED),
    ([P.PUBLISHED, P.FAILED], S.PARTIALLY_FAILED),
    ([P.FAILED, P.FAILED], S.FAILED),
    ([P.RETRACTED, P.RETRACTED], S.RETRACTED),
    ([P.RETRACTED, P.PUBLISHED], S.PUBLISHED),
    ([P.CORRECTED], S.PUBLISHED),
]


@pytest.mark.parametrize(("statuses", "after"), SETTLE)
def test_settle_from_publications(statuses: list[PublicationStatus], after: DraftStatus) -> None:
    pubs = [pub(s, NOW + timedelta(minutes=i) if s is not P.PENDING and s is not P.FAILED else None)
            for i, s in enumerate(statuses)]  # fmt: skip
    settled = machine.settle(publishing(), pubs, NOW)
    assert settled.status is after
    live = [p.published_at for p in pubs if p.published_at]
    assert settled.published_at == (min(live) if live else None)


def test_settle_leaves_a_draft_before_publishing_alone() -> None:
    draft = approved()
    assert machine.settle(draft, [pub(P.PUBLISHED, NOW)], NOW) is draft
