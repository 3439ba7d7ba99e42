# shellcheck shell=bash
# Throwaway PostgreSQL cluster for the test suite (source lib.sh first).
#
#   pg_install   install Debian's PostgreSQL server unless one is present
#   pg_start     initdb + start on 127.0.0.1:<free port>, create msngate_test,
#                export MSNGATE_TEST_POSTGRES_URL (and ..._ADMIN_URL)
#   pg_stop      stop it (the data lives in the run's scratch dir)
#
# Trust auth on loopback only, no Unix socket, fsync off: for tests only.

PG_BINDIR="${PG_BINDIR:-}"
PG_DIR=""
PG_PORT=""
PG_USER_OS=""

# pg_find_bindir: set PG_BINDIR to a directory holding initdb, pg_ctl, postgres
# and psql (newest Debian cluster version first, then PATH).
pg_find_bindir() {
    local d
    if [[ -n "$PG_BINDIR" && -x "$PG_BINDIR/initdb" && -x "$PG_BINDIR/pg_ctl" ]]; then
        return 0
    fi
    PG_BINDIR=""
    for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r); do
        if [[ -x "$d/initdb" && -x "$d/pg_ctl" && -x "$d/postgres" ]]; then
            PG_BINDIR="$d"
            return 0
        fi
    done
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        PG_BINDIR="$(dirname "$(readlink -f "$(command -v pg_ctl)")")"
        return 0
    fi
    return 1
}

pg_install() {
    if pg_find_bindir; then
        return 0
    fi
    svc_apt_install postgresql || return 1
    pg_find_bindir || { svc_err "PostgreSQL was installed but initdb/pg_ctl were not found"; return 1; }
}

# pg_psql ARGS...: the psql of the same installation, or any psql on PATH.
pg_psql() {
    if [[ -x "$PG_BINDIR/psql" ]]; then "$PG_BINDIR/psql" "$@"; else psql "$@"; fi
}

pg_start() {
    local attempt t0=$SECONDS
    pg_install || return 1
    svc_run_dir || return 1
    # initdb and postgres refuse to run as root
    if svc_is_root; then
        if id postgres >/dev/null 2>&1; then PG_USER_OS=postgres; else PG_USER_OS=nobody; fi
    else
        PG_USER_OS="$(id -un)"
    fi
    PG_DIR="$(svc_user_dir pg "$PG_USER_OS")" || return 1

    svc_log "PostgreSQL $("$PG_BINDIR/postgres" --version | awk '{print $3}'): initdb as $PG_USER_OS in ${PG_DIR#"$SVC_REPO_ROOT"/}"
    if ! svc_as "$PG_USER_OS" "$PG_BINDIR/initdb" -D "$PG_DIR/data" -U postgres \
        --auth=trust --encoding=UTF8 --no-locale --no-sync >"$PG_DIR/initdb.log" 2>&1; then
        svc_err "initdb failed"
        svc_show_log "$PG_DIR/initdb.log"
        return 1
    fi

    for attempt in 1 2 3; do
        PG_PORT="$(svc_free_port)" || return 1
        svc_as "$PG_USER_OS" tee -a "$PG_DIR/data/postgresql.conf" >/dev/null <<EOF

# --- msngate test settings ---
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = ''
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
        if svc_as "$PG_USER_OS" "$PG_BINDIR/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" \
            -w -t 60 -s start >/dev/null 2>&1; then
            break
        fi
        if grep -q 'Address already in use' "$PG_DIR/postgres.log" 2>/dev/null && [[ $attempt -lt 3 ]]; then
            svc_info "port $PG_PORT was taken meanwhile; retrying"
            continue
        fi
        svc_err "PostgreSQL did not start"
        svc_show_log "$PG_DIR/postgres.log"
        return 1
    done
    svc_register_stop pg_stop

    if ! pg_psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres \
        -c 'CREATE DATABASE msngate_test' >"$PG_DIR/createdb.log" 2>&1; then
        svc_err "CREATE DATABASE msngate_test failed"
        svc_show_log "$PG_DIR/createdb.log"
        return 1
    fi
    export MSNGATE_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$PG_PORT/msngate_test"
    export MSNGATE_TEST_POSTGRES_ADMIN_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
    svc_info "PostgreSQL ready on 127.0.0.1:$PG_PORT in $((SECONDS - t0)) s"
}

pg_stop() {
    [[ -n "$PG_DIR" && -f "$PG_DIR/data/postmaster.pid" ]] || { PG_DIR=""; return 0; }
    svc_log "stopping PostgreSQL (127.0.0.1:$PG_PORT)"
    if ! svc_as "$PG_USER_OS" "$PG_BINDIR/pg_ctl" -D "$PG_DIR/data" -m fast -w -t 30 -s stop >/dev/null 2>&1; then
        local pid
        pid="$(head -n 1 "$PG_DIR/data/postmaster.pid" 2>/dev/null || true)"
        [[ -n "$pid" ]] && svc_kill "$pid" "$PG_DIR" 5
    fi
    unset MSNGATE_TEST_POSTGRES_URL MSNGATE_TEST_POSTGRES_ADMIN_URL
    PG_DIR=""
    return 0
}
