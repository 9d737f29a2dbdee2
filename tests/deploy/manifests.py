"""Reading deploy/ for the static tests: every YAML document, and the small evaluations the tests share."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "docker-compose.yml"

# process → (settings class path, env prefix, gRPC port, business service name used for readiness)
PROCESSES: Mapping[str, tuple[str, str, int]] = {
    "collector": ("services.collector.settings:CollectorSettings", "QF_COLLECTOR_", 50061),
    "grader": ("services.grader.settings:GraderSettings", "QF_GRADER_", 50062),
    "coordinator": ("services.coordinator.settings:CoordinatorSettings", "QF_COORDINATOR_", 50063),
    "publisher": ("services.publisher.settings:PublisherSettings", "QF_PUBLISHER_", 50064),
    "gateway": ("gateway.settings:GatewaySettings", "QF_GATEWAY_", 50051),
}
SERVICES = ("collector", "grader", "coordinator", "publisher")
PRIVATE_V4 = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16")


@dataclass(frozen=True)
class Doc:
    path: Path
    body: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.body.get("kind", ""))

    @property
    def name(self) -> str:
        return str(self.body.get("metadata", {}).get("name", ""))


def k8s_files() -> list[Path]:
    return sorted(p for p in K8S.rglob("*") if p.suffix in (".yaml", ".yml"))


def k8s_docs() -> list[Doc]:
    docs = []
    for path in k8s_files():
        for body in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if body is not None:
                docs.append(Doc(path, body))
    return docs


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d.kind == kind]


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Whether a NetworkPolicy podSelector (matchLabels only; anything else is refused here) selects ``labels``."""
    selector = selector or {}
    assert set(selector) <= {"matchLabels"}, f"selector form not understood by the test: {selector}"
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def rules_for(policies: list[Doc], labels: Mapping[str, str], direction: str) -> Iterator[dict[str, Any]]:
    """Every ingress or egress rule of every policy that selects a pod with ``labels``."""
    key = "ingress" if direction == "Ingress" else "egress"
    for policy in policies:
        spec = policy.body["spec"]
        if selects(spec.get("podSelector"), labels) and direction in spec.get("policyTypes", []):
            yield from spec.get(key) or []


def pod_labels(process: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": f"qingfeng-{process}", "app.kubernetes.io/part-of": "qingfeng"}


def settings_class(process: str) -> Any:
    module_name, _, attr = PROCESSES[process][0].partition(":")
    module = __import__(module_name, fromlist=[attr])
    return getattr(module, attr)


def resolves(model: Any, path: list[str]) -> bool:
    """Whether ``path`` (lower-case field names) walks through pydantic models to a field."""
    for i, part in enumerate(path):
        fields = getattr(model, "model_fields", None)
        if fields is None or part not in fields:
            return False
        annotation = fields[part].annotation
        if i < len(path) - 1:
            model = annotation
    return True


# Values that would be real secrets: a PEM block with a body, or a long run of random-looking characters.
_PEM_BODY = re.compile(r"-----BEGIN [A-Z ]+-----\s*[A-Za-z0-9+/=\s]{40,}")
_RANDOMISH = re.compile(r"[A-Za-z0-9+/=_]{20,}")


def looks_real(value: str) -> str | None:
    """Why ``value`` looks like a real secret, or None for a placeholder."""
    if "REPLACE_ME" not in value:
        return "no REPLACE_ME placeholder"
    if _PEM_BODY.search(value):
        return "contains a PEM block with a body"
    for run in _RANDOMISH.findall(value):
        if re.search(r"\d", run) and re.search(r"[a-z]", run) and re.search(r"[A-Z]", run):
            return f"contains a random-looking string {run[:6]}…"
        if re.fullmatch(r"[0-9a-f]{32,}", run):
            return f"contains a hex key {run[:6]}…"
    return None
