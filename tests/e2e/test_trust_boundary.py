"""The trust boundary, tried as an attacker on the internal network would: every method of every service, called
directly (past the gateway) with forged ``x-qingfeng-*`` metadata claiming every role, is UNAUTHENTICATED; the same
call with a valid gateway credential passes the check; expired, re-bound or wrongly signed credentials do not.

The methods are discovered through each service's own server reflection, so a method added later is covered too.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from qingfeng.cli.pki import ca_file
from qingfeng.rpc import CredentialSigner
from qingfeng.rpc.credentials import CREDENTIAL_HEADER, generate_key

from tests.e2e.processes import Running, free_port, start
from tests.shared_servers import drop_run, suite_env

pytestmark = pytest.mark.integration

SERVICES = {
    "collector": "services.collector",
    "grader": "services.grader",
    "coordinator": "services.coordinator",
    "publisher": "services.publisher",
}
OPEN = ("grpc.health.", "grpc.reflection.")
EVERY_ROLE = "analyst,see_submitter,see_tips,admin,office,leader,approver,publisher,reviewer"
FORGED = (
    ("x-qingfeng-principal", "secretary"),
    ("x-qingfeng-agency", "opinion_office"),
    ("x-qingfeng-roles", EVERY_ROLE),
    ("authorization", "Bearer anything"),
)


@pytest.fixture(scope="module")
def services(
    kafka_bootstrap: str, es_url: str, tmp_path_factory: pytest.TempPathFactory, identity_env: dict[str, str]
) -> Iterator[dict[str, Running]]:
    tmp = tmp_path_factory.mktemp("trust-boundary")
    run = f"qf-trust-{secrets.token_hex(4)}"  # every topic, group and index of this module's processes
    running: dict[str, Running] = {}
    try:
        for name, module in SERVICES.items():
            prefix = f"QF_{name.upper()}_"
            env = {
                **identity_env,
                **suite_env(name, run),
                f"{prefix}KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
                f"{prefix}ELASTICSEARCH__URL": es_url,
                f"{prefix}DATABASE__URL": f"sqlite+aiosqlite:///{tmp}/{name}.db",
                f"{prefix}LOG__LEVEL": "WARNING",
            }
            running[name] = start(name, module, env, tmp, port=free_port())
        for process in running.values():
            assert process.wait_serving(timeout_s=90) == 1, process.log_tail()
        yield running
    finally:
        try:
            for process in running.values():
                process.stop()
        finally:  # after the processes, which would recreate what is deleted under them
            drop_run(kafka_bootstrap, es_url, run)


def _methods(channel: grpc.Channel) -> list[tuple[str, bool, bool]]:
    """(full path, client streaming, server streaming) of every business method the server reflects."""
    database = ProtoReflectionDescriptorDatabase(channel)
    pool = DescriptorPool(database)
    found = []
    for service_name in database.get_services():
        if service_name.startswith(OPEN):
            continue
        service = pool.FindServiceByName(service_name)
        for method in service.methods:
            found.append((f"/{service.full_name}/{method.name}", method.client_streaming, method.server_streaming))
    return found


def _call(
    channel: grpc.Channel, path: str, streams: tuple[bool, bool], metadata: tuple[tuple[str, str], ...]
) -> grpc.StatusCode:
    """Call ``path`` with an empty request (or empty stream); the final status code."""
    client_stream, server_stream = streams
    try:
        if client_stream and server_stream:
            for _ in channel.stream_stream(path)(iter(()), metadata=metadata, timeout=5):
                pass
        elif client_stream:
            channel.stream_unary(path)(iter(()), metadata=metadata, timeout=5)
        elif server_stream:
            for _ in channel.unary_stream(path)(b"", metadata=metadata, timeout=5):
                pass
        else:
            channel.unary_unary(path)(b"", metadata=metadata, timeout=5)
    except grpc.RpcError as err:
        return err.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def test_every_service_method_believes_only_a_valid_gateway_credential(
    services: dict[str, Running], suite_state: Path, gateway_signer: CredentialSigner
) -> None:
    credentials = grpc.ssl_channel_credentials(ca_file(suite_state).read_bytes())
    impostor = CredentialSigner("gateway", generate_key())  # right issuer name, wrong key
    checked = 0
    for name, process in services.items():
        with grpc.secure_channel(f"127.0.0.1:{process.port}", credentials) as channel:
            methods = _methods(channel)
            assert methods, f"{name} reflects no business method"
            for path, *streams in methods:
                caller = {"principal": "secretary", "agency": "opinion_office", "roles": tuple(EVERY_ROLE.split(","))}
                streams_t = (streams[0], streams[1])
                assert _call(channel, path, streams_t, FORGED) == grpc.StatusCode.UNAUTHENTICATED, path
                valid = gateway_signer.metadata(path, **caller)
                assert _call(channel, path, streams_t, valid) != grpc.StatusCode.UNAUTHENTICATED, path
                expired = ((CREDENTIAL_HEADER, gateway_signer.mint(path, now=time.time() - 600, **caller)),)
                assert _call(channel, path, streams_t, expired) == grpc.StatusCode.UNAUTHENTICATED, path
                other = next(p for p, *_ in methods if p != path) if len(methods) > 1 else "/x.Y/Z"
                rebound = gateway_signer.metadata(other, **caller)
                assert _call(channel, path, streams_t, rebound) == grpc.StatusCode.UNAUTHENTICATED, path
                service, method = path[1:].split("/")
                elsewhere = "GraderService" if "GraderService" not in service else "CollectorService"
                cross = gateway_signer.metadata(f"/qingfeng.v1.{elsewhere}/{method}", **caller)
                assert _call(channel, path, streams_t, cross) == grpc.StatusCode.UNAUTHENTICATED, path
                forged_key = impostor.metadata(path, **caller)
                assert _call(channel, path, streams_t, forged_key) == grpc.StatusCode.UNAUTHENTICATED, path
                checked += 1
    assert checked >= 46, f"only {checked} methods reflected"
