"""How every Kafka client of the suite connects: the one place that turns ``KafkaSettings`` into aiokafka arguments.

Producers, consumers, admin clients and readiness probes all spread ``client_kwargs(settings)`` into their
constructor, so a deployment that turns on SASL/SCRAM over TLS (deploy/README.md) reaches every client at once and
no client is left talking plaintext.
"""

from __future__ import annotations

from typing import Any

from aiokafka.helpers import create_ssl_context

from qingfeng.settings import KafkaSettings

__all__ = ["client_kwargs"]


def client_kwargs(settings: KafkaSettings) -> dict[str, Any]:
    """``bootstrap_servers`` and the security arguments for an aiokafka client built from ``settings``.

    Raises ``ValueError`` naming the variable when SASL is asked for without credentials: a client that would only
    fail at its first connection attempt is a configuration error at start-up.
    """
    kwargs: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "security_protocol": settings.security_protocol,
    }
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        # aiokafka requires a context for TLS; create_ssl_context verifies the broker's certificate and host name.
        cafile = str(settings.ssl_cafile) if settings.ssl_cafile is not None else None
        kwargs["ssl_context"] = create_ssl_context(cafile=cafile)
    if settings.security_protocol == "SASL_SSL":
        if not settings.sasl_username or settings.sasl_password is None:
            raise ValueError(
                "KAFKA__SECURITY_PROTOCOL=SASL_SSL needs KAFKA__SASL_USERNAME and KAFKA__SASL_PASSWORD "
                "(environment or the secrets directory)"
            )
        kwargs["sasl_mechanism"] = settings.sasl_mechanism
        kwargs["sasl_plain_username"] = settings.sasl_username
        kwargs["sasl_plain_password"] = settings.sasl_password.get_secret_value()
    return kwargs
