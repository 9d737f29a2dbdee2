#!/usr/bin/env bash
# A development CA and the server certificates docker-compose.yml mounts, made with openssl into deploy/certs/out/.
#   bash deploy/certs/make-dev-certs.sh          (idempotent: existing files are kept; delete out/ to start over)
# Not for production: there the certificates come from your PKI or cert-manager (deploy/README.md "TLS").
# The directory is 0700; the files inside are 0644 because Compose bind-mounts them into containers that run as
# other users (Kafka uid 1000, Elasticsearch uid 1000, Qingfeng uid 10001) and cannot chown them.
set -euo pipefail
umask 022
out="${1:-$(cd "$(dirname "$0")" && pwd)/out}"
mkdir -p "$out" && chmod 0700 "$out"
days=825

if [[ ! -f "$out/ca.crt" ]]; then
  openssl req -x509 -newkey rsa:3072 -nodes -sha256 -days 3650 -subj "/CN=Qingfeng development CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$out/ca.key" -out "$out/ca.crt" 2>/dev/null
  chmod 0600 "$out/ca.key"  # the CA key is never mounted
fi

# name = the Compose service name, which is also the DNS name clients verify.
issue() {
  local name="$1"
  [[ -f "$out/$name.crt" ]] && return 0
  openssl req -newkey rsa:2048 -nodes -sha256 -subj "/CN=$name" -keyout "$out/$name.key" -out "$out/$name.csr" 2>/dev/null
  printf 'subjectAltName=DNS:%s,DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n' \
    "$name" > "$out/$name.ext"
  openssl x509 -req -sha256 -days "$days" -in "$out/$name.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" \
    -CAcreateserial -extfile "$out/$name.ext" -out "$out/$name.crt" 2>/dev/null
  rm -f "$out/$name.csr" "$out/$name.ext"
}
for name in kafka elasticsearch collector grader coordinator publisher gateway; do issue "$name"; done
# Kafka reads a PEM keystore: the PKCS#8 private key followed by the certificate chain, in one file.
cat "$out/kafka.key" "$out/kafka.crt" "$out/ca.crt" > "$out/kafka-keystore.pem"
chmod 0644 "$out"/*.crt "$out"/*.pem "$out"/kafka.key "$out"/elasticsearch.key "$out"/collector.key \
  "$out"/grader.key "$out"/coordinator.key "$out"/publisher.key "$out"/gateway.key
echo "certificates in $out (CA: $out/ca.crt)"
