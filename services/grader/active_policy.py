"""The active grading policy: its parsed form for the engine, its record (YAML, who, when) for GetPolicy and audit."""

from __future__ import annotations

import hashlib
from typing import Any

from services.grader.adapters.policy_yaml import load_policy
from services.grader.core import Policy
from services.grader.ports import PolicyRecord

__all__ = ["ActivePolicy", "placeholder_policy", "policy_record"]


def policy_record(text: str, policy: Policy, **activation: Any) -> PolicyRecord:
    """The record of a policy version and its YAML text (``activation``: activated_at, activated_by, agency)."""
    sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return PolicyRecord(version=policy.version, yaml=text, sha256=sha, scheme=policy.scheme, **activation)


class ActivePolicy:
    """The active policy: the parsed form for the engine and the record (YAML, who, when) for GetPolicy."""

    def __init__(self, record: PolicyRecord, policy: Policy) -> None:
        self.record = record
        self.policy = policy

    @classmethod
    def of(cls, record: PolicyRecord) -> ActivePolicy:
        return cls(record, load_policy(record.yaml, f"policy {record.version}"))


def placeholder_policy() -> Policy:
    """A minimal valid policy for the engine object before the real one is settled (never graded with)."""
    text = "kind: grading-policy\nname: none\nversion: '0'\nscheme: four_color\nwindows: [1h]\n"
    text += "levels:\n  - {name: blue, warning_level: blue}\n"
    return load_policy(text)
