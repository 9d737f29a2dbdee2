"""Build a ``grpc.aio`` server with tracing, health checking and reflection registered beside the business servicers.

Health and reflection take their service names from descriptors (``DESCRIPTOR.services_by_name``), never from
typed-out strings, so a renamed service cannot drift from its health entry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import _async as reflection_aio
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc
from opentelemetry.instrumentation.grpc import aio_server_interceptor

from qingfeng.rpc.tls import mtls_server_credentials, server_credentials
from qingfeng.settings import GrpcSettings

__all__ = ["LIVENESS", "GrpcServer", "build_server"]

# The health entry a liveness probe checks: SERVING while the process runs, so that an outage of Kafka or the
# database (which turns readiness, the "" entry and the business services, NOT_SERVING) restarts no pod.
LIVENESS = "liveness"

log = logging.getLogger(__name__)

Registrar = Callable[[grpc.aio.Server], None]


@dataclass
class GrpcServer:
    """A built, bound (not yet started) server and the health servicer that reports its readiness."""

    server: grpc.aio.Server
    health: health.aio.HealthServicer
    port: int
    service_names: tuple[str, ...]
    # The listener that requires client certificates (``GrpcSettings.mtls_port``), when configured.
    mtls_port: int | None = None

    async def start(self) -> None:
        """Start serving: liveness SERVING at once, readiness ("" and every business service) NOT_SERVING until the
        lifecycle's probes pass (the health servicer would otherwise report "" SERVING from the first call)."""
        await self.set_serving(False)
        await self.set_alive()
        await self.server.start()

    async def set_alive(self) -> None:
        """Report the liveness entry SERVING: the process runs, whatever its dependencies do."""
        await self.health.set(LIVENESS, health_pb2.HealthCheckResponse.SERVING)

    async def set_serving(self, serving: bool) -> None:
        """Report every business service and the overall server ("") as SERVING or NOT_SERVING."""
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", *self.service_names):
            await self.health.set(name, status)


_REFLECTION_V1 = "grpc.reflection.v1"


def _reflection_v1_name() -> str:
    """Register ``grpc.reflection.v1`` in the default descriptor pool (once) and return its service name.

    grpcio-reflection 1.85 ships only ``v1alpha``. ``v1`` has the same messages with the same field numbers under
    another package, so the v1alpha file is copied under the v1 package: clients (grpcurl, ghz) that resolve
    methods through v1 can then also ask for the v1 service's own schema.
    """
    pool = descriptor_pool.Default()
    name = f"{_REFLECTION_V1}.ServerReflection"
    try:
        pool.FindServiceByName(name)
        return name
    except KeyError:
        pass
    proto = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(proto)
    old, new = f".{proto.package}.", f".{_REFLECTION_V1}."
    proto.name, proto.package = "grpc/reflection/v1/reflection.proto", _REFLECTION_V1
    for message in proto.message_type:
        for field in message.field:
            if field.HasField("type_name"):  # assigning "" would mark a scalar field as typed
                field.type_name = field.type_name.replace(old, new, 1)
    for service in proto.service:
        for method in service.method:
            method.input_type = method.input_type.replace(old, new, 1)
            method.output_type = method.output_type.replace(old, new, 1)
    pool.AddSerializedFile(proto.SerializeToString())
    return name


def _enable_reflection(names: Sequence[str], server: grpc.aio.Server) -> None:
    """Serve reflection as ``grpc.reflection.v1alpha`` and ``grpc.reflection.v1``: one servicer, both paths."""
    v1 = _reflection_v1_name()
    servicer = reflection_aio.ReflectionServicer((*names, reflection.SERVICE_NAME, v1))
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    info = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(v1, {"ServerReflectionInfo": info}),))


def build_server(
    settings: GrpcSettings,
    *,
    services: Sequence[tuple[ServiceDescriptor, Registrar]] = (),
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
) -> GrpcServer:
    """Create the server, register ``services`` plus health and reflection, and bind ``settings.host:port``.

    Every service starts NOT_SERVING; the lifecycle flips it once the process's dependencies answer. The port is TLS
    (``tls_cert_file``/``tls_key_file``) or, only when ``plaintext`` is set, plaintext with a warning; neither is a
    ``TlsConfigError``.
    """
    options = [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.so_reuseport", 0),
    ]
    tracing = aio_server_interceptor()  # type: ignore[no-untyped-call]
    server = grpc.aio.server(interceptors=[tracing, *interceptors], options=options)
    names: list[str] = []
    for descriptor, register in services:
        register(server)
        names.append(descriptor.full_name)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    health_name = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
    _enable_reflection((*names, health_name), server)
    address = f"{settings.host}:{settings.port}"
    credentials = server_credentials(settings)
    if credentials is None:
        log.warning("gRPC on %s WITHOUT TLS (GRPC__PLAINTEXT=true): callers and credentials travel in clear", address)
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, credentials)
    mtls_port: int | None = None
    mtls = mtls_server_credentials(settings)
    if mtls is not None:
        mtls_port = server.add_secure_port(f"{settings.host}:{settings.mtls_port}", mtls)
        if mtls_port == 0:
            raise OSError(f"cannot bind the mutual-TLS port {settings.host}:{settings.mtls_port} (GRPC__MTLS_PORT)")
    if port == 0:
        raise OSError(f"cannot bind gRPC port {settings.host}:{settings.port} (QF_*_GRPC__HOST / QF_*_GRPC__PORT)")
    return GrpcServer(server=server, health=health_servicer, port=port, service_names=tuple(names), mtls_port=mtls_port)
