# shellcheck shell=bash
# Throwaway Synapse homeserver for the test suite (source lib.sh first).
#
#   synapse_install  matrix-synapse from PyPI into .test-services/venv (once)
#   synapse_start    generate a config in the run's scratch dir, start Synapse on
#                    127.0.0.1:<free port> and wait for /_matrix/client/versions
#   synapse_stop     stop it (also a copy that a test restarted)
#
# Loopback only, SQLite, client API only (no federation listener), no outbound
# traffic (trusted_key_servers: [], federation whitelist empty, no stats, no URL
# previews), rate limits lifted. docs/testing.md describes the setup.
#
# The appservice registration is loaded at startup, so it must exist first:
# MSNGATE_TEST_AS_REGISTRATION=<path> uses that file; otherwise a fixed test
# registration (id msn, url http://127.0.0.1:29320) is written and the variable
# is exported with its path.

SYNAPSE_VERSION="${MSNGATE_TEST_SYNAPSE_VERSION:-1.163.2}"
SYNAPSE_VENV="${SYNAPSE_VENV:-$SVC_HOME/venv}"
SYNAPSE_DIR=""
SYNAPSE_PORT=""
SYNAPSE_PID=""
SYNAPSE_REG_GENERATED=0

synapse_install() {
    svc_pip_install "$SYNAPSE_VENV" ".msngate-stamp-synapse-$SYNAPSE_VERSION" \
        "matrix-synapse==$SYNAPSE_VERSION" || return 1
    "$SYNAPSE_VENV/bin/python" -c 'import synapse, yaml' 2>/dev/null || {
        svc_err "matrix-synapse is not importable from $SYNAPSE_VENV"
        rm -f "$SYNAPSE_VENV"/.msngate-stamp-*
        return 1
    }
}

# synapse_write_registration FILE: the fixed test appservice registration.
synapse_write_registration() {
    cat >"$1" <<'EOF'
# msngate test appservice registration (written by scripts/services/synapse.sh)
id: msn
url: "http://127.0.0.1:29320"
as_token: "as_token_for_tests_0123456789"
hs_token: "hs_token_for_tests_0123456789"
sender_localpart: _msn_bot
namespaces:
  users: [{exclusive: true, regex: '@_msn_.*:localhost'}]
  aliases: [{exclusive: true, regex: '#_msn_.*:localhost'}]
  rooms: []
rate_limited: false
receive_ephemeral: true
EOF
}

synapse_start() {
    local t0=$SECONDS py reg deadline
    synapse_install || return 1
    svc_run_dir || return 1
    py="$SYNAPSE_VENV/bin/python"
    SYNAPSE_DIR="$SVC_RUN_DIR/synapse"
    rm -rf "$SYNAPSE_DIR"
    mkdir -p "$SYNAPSE_DIR/data" || return 1

    reg="${MSNGATE_TEST_AS_REGISTRATION:-}"
    if [[ -n "$reg" ]]; then
        [[ -f "$reg" ]] || { svc_err "MSNGATE_TEST_AS_REGISTRATION=$reg does not exist"; return 1; }
        reg="$(cd "$(dirname "$reg")" && pwd -P)/$(basename "$reg")"
    else
        reg="$SYNAPSE_DIR/msn-registration.yaml"
        synapse_write_registration "$reg"
        SYNAPSE_REG_GENERATED=1
    fi

    svc_log "Synapse $SYNAPSE_VERSION: generating config in ${SYNAPSE_DIR#"$SVC_REPO_ROOT"/}"
    # generate keys and secrets; run from the dir: the generated log config
    # writes homeserver.log into the current directory
    if ! (cd "$SYNAPSE_DIR" && "$py" -m synapse.app.homeserver --server-name localhost \
        --config-path "$SYNAPSE_DIR/homeserver.yaml" --generate-config --report-stats=no \
        --data-directory "$SYNAPSE_DIR/data") >"$SYNAPSE_DIR/generate.log" 2>&1; then
        svc_err "synapse --generate-config failed"
        svc_show_log "$SYNAPSE_DIR/generate.log"
        return 1
    fi

    SYNAPSE_PORT="$(svc_free_port)" || return 1
    # keep the generated secrets and key, replace everything else
    if ! D="$SYNAPSE_DIR" PORT="$SYNAPSE_PORT" REG="$reg" "$py" - >"$SYNAPSE_DIR/config.log" 2>&1 <<'EOF'
import os, yaml
d, port, reg = os.environ["D"], int(os.environ["PORT"]), os.environ["REG"]
path = os.path.join(d, "homeserver.yaml")
with open(path) as f:
    gen = yaml.safe_load(f)
keep = ("registration_shared_secret", "macaroon_secret_key", "form_secret",
        "signing_key_path", "log_config")
cfg = {k: gen[k] for k in keep if k in gen}
def lim():
    return {"per_second": 1000, "burst_count": 1000}
cfg.update({
    "server_name": "localhost",
    "public_baseurl": f"http://127.0.0.1:{port}/",
    "pid_file": os.path.join(d, "data", "homeserver.pid"),
    "listeners": [{
        "port": port,
        "bind_addresses": ["127.0.0.1"],
        "type": "http",
        "tls": False,
        "x_forwarded": False,
        "resources": [{"names": ["client"], "compress": False}],
    }],
    "database": {"name": "sqlite3", "args": {"database": os.path.join(d, "data", "homeserver.db")}},
    "media_store_path": os.path.join(d, "data", "media_store"),
    "report_stats": False,
    "enable_metrics": False,
    "trusted_key_servers": [],
    "suppress_key_server_warning": True,
    "federation_domain_whitelist": [],
    "allow_public_rooms_over_federation": False,
    "url_preview_enabled": False,
    "enable_registration": False,
    "presence": {"enabled": True},
    "app_service_config_files": [reg],
    "rc_message": lim(),
    "rc_registration": lim(),
    "rc_login": {"address": lim(), "account": lim(), "failed_attempts": lim()},
    "rc_joins": {"local": lim(), "remote": lim()},
    "rc_invites": {"per_room": lim(), "per_user": lim(), "per_issuer": lim()},
    "rc_joins_per_room": lim(),
    "rc_presence": {"per_user": lim()},
    "rc_room_creation": lim(),
    "rc_profile": lim(),
    "rc_user_directory": lim(),
    "rc_media_create": lim(),
})
with open(path, "w") as f:
    f.write("# generated by scripts/services/synapse.sh for tests: loopback, no federation\n")
    yaml.safe_dump(cfg, f, sort_keys=False)
EOF
    then
        svc_err "writing homeserver.yaml failed"
        svc_show_log "$SYNAPSE_DIR/config.log"
        return 1
    fi

    svc_log "Synapse: starting on 127.0.0.1:$SYNAPSE_PORT"
    (cd "$SYNAPSE_DIR" && exec "$py" -m synapse.app.homeserver -c "$SYNAPSE_DIR/homeserver.yaml") \
        >"$SYNAPSE_DIR/stdout.log" 2>&1 </dev/null &
    SYNAPSE_PID=$!
    svc_register_stop synapse_stop

    deadline=$((SECONDS + ${MSNGATE_TEST_SYNAPSE_TIMEOUT:-90}))
    until svc_http_ok "http://127.0.0.1:$SYNAPSE_PORT/_matrix/client/versions"; do
        if ! kill -0 "$SYNAPSE_PID" 2>/dev/null; then
            svc_err "Synapse exited during startup"
            svc_show_log "$SYNAPSE_DIR/stdout.log"
            svc_show_log "$SYNAPSE_DIR/homeserver.log"
            return 1
        fi
        if ((SECONDS >= deadline)); then
            svc_err "Synapse did not answer /_matrix/client/versions in time"
            svc_show_log "$SYNAPSE_DIR/homeserver.log"
            return 1
        fi
        sleep 0.2
    done

    export MSNGATE_TEST_SYNAPSE_URL="http://127.0.0.1:$SYNAPSE_PORT"
    export MSNGATE_TEST_SYNAPSE_DIR="$SYNAPSE_DIR"
    export MSNGATE_TEST_SYNAPSE_SERVER_NAME="localhost"
    export MSNGATE_TEST_SYNAPSE_PYTHON="$py"
    export MSNGATE_TEST_AS_REGISTRATION="$reg"
    MSNGATE_TEST_SYNAPSE_SHARED_SECRET="$("$py" -c '
import sys, yaml
print(yaml.safe_load(open(sys.argv[1]))["registration_shared_secret"])' "$SYNAPSE_DIR/homeserver.yaml")" || return 1
    export MSNGATE_TEST_SYNAPSE_SHARED_SECRET
    svc_info "Synapse ready at $MSNGATE_TEST_SYNAPSE_URL in $((SECONDS - t0)) s"
}

synapse_stop() {
    [[ -n "$SYNAPSE_DIR" ]] || return 0
    svc_log "stopping Synapse (127.0.0.1:$SYNAPSE_PORT)"
    [[ -n "$SYNAPSE_PID" ]] && svc_kill "$SYNAPSE_PID" "$SYNAPSE_DIR" 20
    # a test may have restarted it: stop whatever runs this run's config
    svc_kill_matching "$SYNAPSE_DIR/homeserver.yaml" 20
    wait "$SYNAPSE_PID" 2>/dev/null || true
    unset MSNGATE_TEST_SYNAPSE_URL MSNGATE_TEST_SYNAPSE_DIR MSNGATE_TEST_SYNAPSE_SHARED_SECRET \
        MSNGATE_TEST_SYNAPSE_SERVER_NAME MSNGATE_TEST_SYNAPSE_PYTHON
    if [[ "$SYNAPSE_REG_GENERATED" == 1 ]]; then
        unset MSNGATE_TEST_AS_REGISTRATION
        SYNAPSE_REG_GENERATED=0
    fi
    SYNAPSE_DIR=""
    SYNAPSE_PID=""
    return 0
}
