"""Static checks of deploy/k8s: probes, pod hardening, NetworkPolicies, secrets as placeholders, kustomization.

Nothing here talks to a cluster (none is available to the tests); each check reads the YAML the cluster would get.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest
import yaml
from qingfeng.rpc import LIVENESS
from qingfeng.v1 import case_pb2, event_pb2, publication_pb2, source_pb2

from tests.deploy.manifests import (
    K8S,
    PRIVATE_V4,
    PROCESSES,
    SERVICES,
    Doc,
    k8s_docs,
    k8s_files,
    looks_real,
    of_kind,
    pod_labels,
    resolves,
    rules_for,
    selects,
    settings_class,
)

READINESS = {
    "collector": source_pb2.DESCRIPTOR.services_by_name["CollectorService"].full_name,
    "grader": event_pb2.DESCRIPTOR.services_by_name["GraderService"].full_name,
    "coordinator": case_pb2.DESCRIPTOR.services_by_name["CoordinatorService"].full_name,
    "publisher": publication_pb2.DESCRIPTOR.services_by_name["PublisherService"].full_name,
    "gateway": "",  # the whole server
}
GATEWAY_PEER = {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "qingfeng-gateway"}}}
DATA_PORTS = {"kafka": 9093, "elasticsearch": 9200, "postgresql": 5432}
USES = {
    "collector": {"kafka", "elasticsearch", "postgresql"},
    "grader": {"kafka", "elasticsearch", "postgresql"},
    "coordinator": {"kafka", "postgresql"},
    "publisher": {"kafka", "postgresql"},
    "gateway": {"kafka", "elasticsearch"},
}

DOCS = k8s_docs()
POLICIES = of_kind(DOCS, "NetworkPolicy")


def _kustomization() -> dict[str, Any]:
    loaded = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _deployment(process: str) -> Doc:
    (found,) = [d for d in of_kind(DOCS, "Deployment") if d.name == f"qingfeng-{process}"]
    return found


def _container(process: str) -> dict[str, Any]:
    (container,) = _deployment(process).body["spec"]["template"]["spec"]["containers"]
    assert isinstance(container, dict)
    return container


def test_kustomization_lists_every_manifest_and_no_example() -> None:
    listed = set(_kustomization()["resources"])
    files = {p.relative_to(K8S).as_posix() for p in k8s_files()} - {"kustomization.yaml"}
    examples = {f for f in files if f.endswith(".example.yaml")}
    assert examples, "the Secret examples are expected in deploy/k8s"
    assert listed == files - examples
    assert not listed & examples, "an example with placeholders must never be applied"


def test_kustomize_builds_into_the_namespace() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (kustomize build not checked)")
    built = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True, check=True, timeout=60)
    objects = [o for o in yaml.safe_load_all(built.stdout) if o]
    assert {o["metadata"]["namespace"] for o in objects} == {"qingfeng"}
    assert sum(o["kind"] == "NetworkPolicy" for o in objects) == len(POLICIES)
    assert not [o for o in objects if o["kind"] == "Secret"]


def test_one_deployment_per_process() -> None:
    assert sorted(d.name for d in of_kind(DOCS, "Deployment")) == sorted(f"qingfeng-{p}" for p in PROCESSES)


@pytest.mark.parametrize("process", list(PROCESSES))
def test_liveness_is_the_liveness_entry_and_readiness_is_not(process: str) -> None:
    """Both probes run the TLS health script (tests/deploy/test_probe.py) with: folder, port, name, service, mode."""
    container = _container(process)
    port = PROCESSES[process][2]
    assert {"name": "grpc", "containerPort": port} in container["ports"]
    mode = "none" if process == "gateway" else "mutual"  # services require a client certificate, the gateway not
    name = f"qingfeng-{process}.qingfeng.svc"
    liveness = container["livenessProbe"]["exec"]["command"]
    readiness = container["readinessProbe"]["exec"]["command"]
    assert liveness[3:] == ["/run/tls", str(port), name, LIVENESS, mode]  # the entry the server keeps SERVING
    assert readiness[3:] == ["/run/tls", str(port), name, READINESS[process], mode]
    assert liveness[6] != readiness[6]
    assert any(m["mountPath"] == "/run/tls" for m in container["volumeMounts"])
    # A liveness probe must not kill a pod faster than a dependency outage is noticed by readiness.
    live_window = container["livenessProbe"]["periodSeconds"] * container["livenessProbe"]["failureThreshold"]
    assert live_window >= 30


@pytest.mark.parametrize("process", list(PROCESSES))
def test_pods_run_as_non_root_on_a_read_only_root(process: str) -> None:
    pod = _deployment(process).body["spec"]["template"]["spec"]
    container = _container(process)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["automountServiceAccountToken"] is False
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]


@pytest.mark.parametrize("process", list(PROCESSES))
def test_mounts_are_directories_so_rotations_arrive(process: str) -> None:
    # subPath mounts never receive updates: a rotated certificate or trust file would not reach the pod.
    assert all("subPath" not in m for m in _container(process)["volumeMounts"])


def test_a_default_deny_policy_covers_every_pod() -> None:
    deny = [
        p
        for p in POLICIES
        if p.body["spec"]["podSelector"] == {}
        and set(p.body["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not p.body["spec"].get("ingress")
        and not p.body["spec"].get("egress")
    ]
    assert len(deny) == 1


def test_no_rule_opens_to_everyone() -> None:
    # A rule without peers or without ports allows every source/destination or every port.
    for policy in POLICIES:
        for key, peers in (("ingress", "from"), ("egress", "to")):
            for rule in policy.body["spec"].get(key) or []:
                assert rule.get(peers), f"{policy.name}: a {key} rule without {peers!r} allows everyone"
                assert rule.get("ports"), f"{policy.name}: a {key} rule without ports allows every port"


@pytest.mark.parametrize("process", list(PROCESSES))
def test_every_pod_may_resolve_names(process: str) -> None:
    rules = list(rules_for(POLICIES, pod_labels(process), "Egress"))
    assert any({"protocol": "UDP", "port": 53} in r["ports"] for r in rules)


@pytest.mark.parametrize("service", SERVICES)
def test_services_accept_only_the_gateway_on_their_port(service: str) -> None:
    rules = list(rules_for(POLICIES, pod_labels(service), "Ingress"))
    assert rules, f"{service}: no ingress at all; the gateway could not call it"
    for rule in rules:
        assert rule["from"] == [GATEWAY_PEER]
        assert rule["ports"] == [{"protocol": "TCP", "port": PROCESSES[service][2]}]


def test_gateway_accepts_partners_on_grpc_mtls_and_https_only() -> None:
    rules = list(rules_for(POLICIES, pod_labels("gateway"), "Ingress"))
    assert rules
    for rule in rules:
        assert {p["port"] for p in rule["ports"]} <= {50051, 50052, 8443}
        # Partners are outside the cluster: address blocks, never a pod or namespace selector.
        assert all(set(peer) == {"ipBlock"} for peer in rule["from"])


@pytest.mark.parametrize("service", SERVICES)
def test_gateway_may_call_each_service(service: str) -> None:
    rules = list(rules_for(POLICIES, pod_labels("gateway"), "Egress"))
    port = PROCESSES[service][2]
    assert any(
        r["ports"] == [{"protocol": "TCP", "port": port}]
        and all("podSelector" in peer and selects(peer["podSelector"], pod_labels(service)) for peer in r["to"])
        for r in rules
    )


def _data_stores_reached(process: str) -> set[str]:
    reached = set()
    for rule in rules_for(POLICIES, pod_labels(process), "Egress"):
        for peer in rule["to"]:
            name = (peer.get("podSelector") or {}).get("matchLabels", {}).get("app.kubernetes.io/name")
            if name in DATA_PORTS:
                assert "namespaceSelector" in peer, f"{process}: data store selector without its namespace"
                assert rule["ports"] == [{"protocol": "TCP", "port": DATA_PORTS[name]}]
                reached.add(name)
    return reached


@pytest.mark.parametrize("process", list(PROCESSES))
def test_each_process_reaches_exactly_the_data_stores_it_uses(process: str) -> None:
    assert _data_stores_reached(process) == USES[process]


def test_only_the_collector_reaches_the_internet_and_never_private_ranges() -> None:
    blocks = []
    for policy in POLICIES:
        for rule in policy.body["spec"].get("egress") or []:
            for peer in rule["to"]:
                if "ipBlock" in peer:
                    blocks.append((policy, rule, peer["ipBlock"]))
    assert blocks, "the collector needs internet egress for its sources"
    for policy, rule, block in blocks:
        assert selects(policy.body["spec"]["podSelector"], pod_labels("collector"))
        others = [p for p in PROCESSES if p != "collector"]
        assert not any(selects(policy.body["spec"]["podSelector"], pod_labels(p)) for p in others)
        assert {p["port"] for p in rule["ports"]} == {80, 443}
        if block["cidr"] == "0.0.0.0/0":
            assert set(PRIVATE_V4) <= set(block.get("except", []))
        else:
            assert block["cidr"] == "::/0"
            assert {"fc00::/7", "fe80::/10"} <= set(block.get("except", []))
    assert any(b["cidr"] == "0.0.0.0/0" for _, _, b in blocks)


def test_secrets_in_the_repository_are_placeholders_and_never_applied() -> None:
    secrets = of_kind(DOCS, "Secret")
    assert len(secrets) >= len(PROCESSES)
    for doc in secrets:
        assert doc.path.name.endswith(".example.yaml"), f"{doc.path.name}: a Secret outside an example file"
        assert "data" not in doc.body, f"{doc.name}: base64 data hides what it holds; use stringData placeholders"
        for key, value in doc.body["stringData"].items():
            assert looks_real(str(value)) is None, f"{doc.name}/{key}: {looks_real(str(value))}"


def test_placeholder_check_catches_real_looking_values() -> None:
    assert looks_real('{"password": "hunter2"}') == "no REPLACE_ME placeholder"
    assert looks_real("REPLACE_ME -----BEGIN PRIVATE KEY-----\n" + "MC4CAQAwBQYDK2VwBCIEIA" * 3) is not None
    assert looks_real("REPLACE_ME then aZ3kQ9xLmP2wR7tY5uV1bN") is not None
    assert looks_real("REPLACE_ME " + "79897474d3bd531f65919e3a59fe8048") is not None
    assert looks_real("REPLACE_ME: its private key, PEM") is None


def test_every_referenced_secret_and_configmap_is_defined() -> None:
    secrets = {d.name for d in of_kind(DOCS, "Secret")}
    generated = {g["name"] for g in _kustomization()["configMapGenerator"]}
    config_maps = {d.name for d in of_kind(DOCS, "ConfigMap")} | generated
    for process in PROCESSES:
        pod = _deployment(process).body["spec"]["template"]["spec"]
        for volume in pod["volumes"]:
            if "secret" in volume:
                assert volume["secret"]["secretName"] in secrets
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps
        for source in _container(process).get("envFrom", []):
            assert source["configMapRef"]["name"] in config_maps


@pytest.mark.parametrize("process", list(PROCESSES))
def test_settings_secret_files_are_top_level_groups_holding_json(process: str) -> None:
    """pydantic-settings reads <prefix><field> (lower case) from QF_SECRETS_DIR; a group's file is JSON."""
    (doc,) = [d for d in of_kind(DOCS, "Secret") if d.name == f"qingfeng-{process}"]
    prefix = PROCESSES[process][1].lower()
    model = settings_class(process)
    assert doc.body["stringData"]
    for key, value in doc.body["stringData"].items():
        assert key.startswith(prefix) and "__" not in key, f"{key}: not read by pydantic-settings"
        field = key.removeprefix(prefix)
        assert field in model.model_fields
        group = model.model_fields[field].annotation
        assert set(json.loads(value)) <= set(group.model_fields), f"{key}: unknown fields"


def _environment(process: str) -> dict[str, str]:
    env = {e["name"]: str(e.get("value", "")) for e in _container(process)["env"]}
    for generator in _kustomization()["configMapGenerator"]:
        if generator["name"] == f"qingfeng-{process}":
            env.update(literal.split("=", 1) for literal in generator["literals"])
    return env


@pytest.mark.parametrize("process", list(PROCESSES))
def test_every_variable_names_a_setting_of_that_process(process: str) -> None:
    prefix = PROCESSES[process][1]
    model = settings_class(process)
    for name in _environment(process):
        if name in ("QF_SECRETS_DIR", "PGSSLROOTCERT"):
            continue
        assert name.startswith(prefix), f"{name}: another process's prefix"
        assert resolves(model, name.removeprefix(prefix).lower().split("__")), f"{name}: no such setting"


@pytest.mark.parametrize("process", list(PROCESSES))
def test_file_settings_point_into_mounted_volumes(process: str) -> None:
    mounts = [m["mountPath"] for m in _container(process)["volumeMounts"]]
    for name, value in _environment(process).items():
        if name.endswith(("_FILE", "_CAFILE", "ACCESS_POLICY", "SECRETS_DIR", "PGSSLROOTCERT")):
            assert any(value == m or value.startswith(m + "/") for m in mounts), f"{name}={value}: not mounted"


@pytest.mark.parametrize("service", SERVICES)
def test_services_trust_the_configmap_and_require_the_gateways_certificate(service: str) -> None:
    env = _environment(service)
    prefix = PROCESSES[service][1]
    assert env[f"{prefix}IDENTITY__TRUST_FILE"] == "/etc/qingfeng/trust/trust.yaml"
    assert env[f"{prefix}GRPC__TLS_CLIENT_AUTH"] == "require"
    assert env[f"{prefix}KAFKA__SECURITY_PROTOCOL"] == "SASL_SSL"
    volumes = _deployment(service).body["spec"]["template"]["spec"]["volumes"]
    assert {"name": "trust", "configMap": {"name": "qingfeng-trust"}} in volumes


def test_trust_file_shape() -> None:
    (doc,) = [d for d in of_kind(DOCS, "ConfigMap") if d.name == "qingfeng-trust"]
    trust = yaml.safe_load(doc.body["data"]["trust.yaml"])
    issuers = {i["name"]: i for i in trust["issuers"]}
    assert trust["version"] == 1
    assert issuers["gateway"]["asserts_identities"] is True
    for issuer in issuers.values():
        assert not (issuer.get("asserts_identities") and issuer.get("grants"))
        for grant in issuer.get("grants", []):
            service, method = grant.strip("/").split("/")
            package, _, short = service.rpartition(".")
            modules = (source_pb2, event_pb2, case_pb2, publication_pb2)
            assert any(short in m.DESCRIPTOR.services_by_name for m in modules), grant
            (module,) = [m for m in modules if short in m.DESCRIPTOR.services_by_name]
            assert method in module.DESCRIPTOR.services_by_name[short].methods_by_name, grant
            assert package == "qingfeng.v1"


def test_gateway_signs_with_the_identity_secret() -> None:
    env = _environment("gateway")
    assert env["QF_GATEWAY_IDENTITY__ISSUER"] == "gateway"
    assert env["QF_GATEWAY_IDENTITY__SIGNING_KEY_FILE"].startswith("/run/secrets/identity/")
    volumes = _deployment("gateway").body["spec"]["template"]["spec"]["volumes"]
    assert {"name": "identity", "secret": {"secretName": "qingfeng-gateway-identity", "defaultMode": 0o440}} in volumes
