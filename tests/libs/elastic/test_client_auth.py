"""create_client: credentials and the cluster's CA from settings reach the client (no cluster needed)."""

from __future__ import annotations

import base64
from pathlib import Path

from pydantic import SecretStr
from qingfeng.elastic import create_client
from qingfeng.settings import ElasticsearchSettings

from tests.libs.ca_files import write_ca_pem


async def test_basic_auth_and_ca_file_are_passed(tmp_path: Path) -> None:
    ca = write_ca_pem(tmp_path / "ca.pem")
    es = create_client(
        ElasticsearchSettings(
            url="https://elasticsearch:9200", username="qingfeng-grader", password=SecretStr("placeholder"), ca_file=ca
        )
    )
    try:
        expected = "Basic " + base64.b64encode(b"qingfeng-grader:placeholder").decode()
        assert es._headers["authorization"] == expected
        (node,) = es.transport.node_pool.all()
        assert node.config.scheme == "https"
        assert node.config.ca_certs == str(ca)
        assert node.config.verify_certs is True
    finally:
        await es.close()


async def test_without_username_no_credentials_are_sent() -> None:
    es = create_client(ElasticsearchSettings(url="http://127.0.0.1:19200"))
    try:
        assert "authorization" not in es._headers
        (node,) = es.transport.node_pool.all()
        assert node.config.ca_certs is None
    finally:
        await es.close()
