#!/usr/bin/env bash
# Run msngate's whole test suite on a Debian bookworm machine.
#
#   scripts/test.sh [CARGO-TEST-ARGS...]
#
# Installs what is missing (PostgreSQL and ngircd from Debian, Synapse and the
# Docker linters from PyPI into .test-services/), starts throwaway services on
# 127.0.0.1 in .test-services/run-XXXXXX, runs `cargo test --workspace --locked
# ARGS...` and scripts/check-docker.sh, and stops every service on exit.
# First of all, scripts/check-links.sh checks the Markdown files' links.
#
# Switches (environment):
#   MSNGATE_TEST_POSTGRES=0|1   PostgreSQL cluster (default 1)
#   MSNGATE_TEST_SYNAPSE=0|1    Synapse homeserver for tests/matrix.rs (default 1)
#   MSNGATE_TEST_IRC=0|1        ngircd IRC server (default 1; tests/irc.rs)
#   MSNGATE_TEST_DOCKER=0|1     scripts/check-docker.sh (default 1)
#   MSNGATE_TEST_AS_REGISTRATION=PATH   appservice registration Synapse loads
#   MSNGATE_TEST_KEEP=1         keep the scratch dir (logs, data) after the run
# See docs/testing.md.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/services/lib.sh
source scripts/services/lib.sh
# shellcheck source=scripts/services/postgres.sh
source scripts/services/postgres.sh
# shellcheck source=scripts/services/synapse.sh
source scripts/services/synapse.sh
# shellcheck source=scripts/services/ngircd.sh
source scripts/services/ngircd.sh

want_pg="${MSNGATE_TEST_POSTGRES:-1}"
want_synapse="${MSNGATE_TEST_SYNAPSE:-1}"
want_irc="${MSNGATE_TEST_IRC:-1}"
want_docker="${MSNGATE_TEST_DOCKER:-1}"
for v in want_pg want_synapse want_irc want_docker; do
    case "${!v}" in
        0 | 1) ;;
        *) svc_err "switches take 0 or 1 (got '${!v}' for ${v#want_})"; exit 2 ;;
    esac
done

T0=$SECONDS
on_exit() {
    local rc=$?
    trap - EXIT INT TERM HUP
    set +e
    svc_stop_all
    if [[ -n "$SVC_RUN_DIR" ]]; then
        if [[ $rc -ne 0 || "${MSNGATE_TEST_KEEP:-0}" == 1 ]]; then
            svc_info "scratch dir kept for inspection: ${SVC_RUN_DIR#"$SVC_REPO_ROOT"/} (removed by the next run)"
        else
            svc_remove_run_dir "$SVC_RUN_DIR"
        fi
    fi
    if [[ $rc -eq 0 ]]; then
        svc_log "all done in $((SECONDS - T0)) s"
    else
        svc_err "scripts/test.sh failed (exit $rc) after $((SECONDS - T0)) s"
    fi
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

svc_log "msngate tests in $SVC_REPO_ROOT (postgres=$want_pg synapse=$want_synapse irc=$want_irc docker=$want_docker)"

# ---- documentation links (well under a second; python3 is the only need)
svc_log "scripts/check-links.sh"
if ! command -v python3 >/dev/null 2>&1; then svc_apt_install python3 || exit 1; fi
scripts/check-links.sh || exit 1

command -v cargo >/dev/null 2>&1 || { svc_err "cargo is not on PATH (install Rust with rustup)"; exit 1; }

# The helpers report their own errors and return non-zero; they are called as
# `f || exit 1` so that they run with the same (errexit-free) semantics as
# when sourced into an interactive shell.

# ---- install (each step is a no-op when already done)
if [[ $want_pg == 1 ]]; then pg_install || exit 1; fi
# tests/legacy_tls.rs: a client offering exactly what Windows XP's SChannel
# offers (gnutls-cli) and openssl for its RSA certificate.
command -v gnutls-cli >/dev/null 2>&1 || svc_apt_install gnutls-bin || exit 1
command -v openssl >/dev/null 2>&1 || svc_apt_install openssl || exit 1
if [[ $want_irc == 1 ]]; then ngircd_install || exit 1; fi
if [[ $want_synapse == 1 ]]; then synapse_install || exit 1; fi

# ---- start services
svc_prune_stale_runs || true
svc_run_dir || exit 1
if [[ $want_pg == 1 ]]; then pg_start || exit 1; fi
if [[ $want_irc == 1 ]]; then ngircd_start || exit 1; fi
if [[ $want_synapse == 1 ]]; then synapse_start || exit 1; fi

svc_log "test environment"
while IFS= read -r line; do
    svc_info "$line"
done < <(env | grep '^MSNGATE_TEST_' | sort)

# ---- tests
# `--workspace` would override a package selection (`-p msnp` would still
# build and test everything), so it is left out when the caller picks packages.
scope=(--workspace)
for arg in "$@"; do
    case "$arg" in
        --) break ;;
        -p | -p?* | --package | --package=*) scope=() ;;
    esac
done
svc_log "cargo test ${scope[*]:+${scope[*]} }--locked $*${CARGO_TARGET_DIR:+ (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)} [database: SQLite]"
cargo test "${scope[@]}" --locked "$@"

# The same msngate tests again with PostgreSQL as the database: every test
# server then gets a fresh database of its own on the throwaway cluster.
if [[ $want_pg == 1 && ${#scope[@]} -gt 0 ]]; then
    svc_log "cargo test -p msngate --locked $* [database: PostgreSQL]"
    MSNGATE_TEST_BACKEND=postgres cargo test -p msngate --locked "$@"
fi

if [[ $want_docker == 1 ]]; then
    svc_log "scripts/check-docker.sh"
    scripts/check-docker.sh
fi
