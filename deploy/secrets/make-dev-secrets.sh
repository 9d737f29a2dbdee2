#!/usr/bin/env bash
# The files docker-compose.yml mounts as secrets, generated into this folder (git-ignored except this script):
#   bash deploy/secrets/make-dev-secrets.sh     (idempotent: passwords and keys are kept; delete a file to renew it)
# Raw passwords (kafka_<process>_password, es_<process>_password, es_elastic_password, db_password) are the source;
# the settings files each process reads from QF_SECRETS_DIR (qf_<process>_kafka, qf_<process>_elasticsearch,
# qf_<process>_database: JSON, see deploy/README.md "Secrets") are rewritten from them on every run.
# The gateway's identity key, the trust file, the gateway's access policy and the tip key come from the qingfeng CLI
# code (qingfeng.cli.pki, qingfeng.cli.tokens), so Compose and `qingfeng up` make them the same way. Partner tokens
# are in state/tokens/<identity>. Files are 0644 inside this 0700 folder: Compose bind-mounts them into containers
# running as other users and cannot chown them.
set -euo pipefail
umask 022
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="${1:-$here}"
py="${PYTHON:-$repo/.venv/bin/python}"
mkdir -p "$out" && chmod 0700 "$out"

keep() {  # keep NAME COMMAND…: write the command's output to NAME unless NAME exists and is not empty
  local name="$1"; shift
  [[ -s "$out/$name" ]] || "$@" > "$out/$name"
}
password() { openssl rand -hex 24; }

processes=(collector grader coordinator publisher gateway)
es_users=(collector grader gateway)
db_users=(collector grader coordinator publisher)

for p in "${processes[@]}"; do keep "kafka_${p}_password" password; done
for p in "${es_users[@]}"; do keep "es_${p}_password" password; done
keep es_elastic_password password
keep db_password password

for p in "${processes[@]}"; do
  printf '{"sasl_username": "qingfeng-%s", "sasl_password": "%s"}' "$p" "$(cat "$out/kafka_${p}_password")" > "$out/qf_${p}_kafka"
done
for p in "${es_users[@]}"; do
  printf '{"username": "qingfeng-%s", "password": "%s"}' "$p" "$(cat "$out/es_${p}_password")" > "$out/qf_${p}_elasticsearch"
done
for p in "${db_users[@]}"; do
  printf '{"url": "postgresql+asyncpg://qingfeng:%s@postgres:5432/qingfeng"}' "$(cat "$out/db_password")" > "$out/qf_${p}_database"
done

"$py" - "$out" <<'PY'
import shutil
import sys
from pathlib import Path

from qingfeng.cli.pki import key_file, provision_identities
from qingfeng.cli.tokens import provision, provision_tip_key

out = Path(sys.argv[1])
state = out / "state"
shutil.copyfile(provision_identities(state), out / "trust.yaml")
shutil.copyfile(key_file(state, "gateway"), out / "gateway_identity.pem")
shutil.copyfile(provision(state), out / "access.yaml")
shutil.copyfile(provision_tip_key(state), out / "collector_tip_key")
PY
chmod 0644 "$out"/*_password "$out"/qf_* "$out"/trust.yaml "$out"/gateway_identity.pem "$out"/access.yaml \
  "$out"/collector_tip_key
echo "secrets in $out; partner tokens in $out/state/tokens/"
