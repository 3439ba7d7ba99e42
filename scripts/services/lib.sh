# shellcheck shell=bash
# Helpers shared by scripts/test.sh and scripts/services/*.sh.
#
# Source this file from bash (it only defines functions and variables: no
# `set -e`, no traps), then source the service files you need, e.g.:
#
#   source scripts/services/lib.sh
#   source scripts/services/postgres.sh
#   pg_start && psql "$MSNGATE_TEST_POSTGRES_URL" -c 'select 1'
#   svc_cleanup          # stops everything started, removes the scratch dir
#
# Every function returns non-zero on failure instead of exiting, so it is safe
# to use from an interactive shell as well as from `set -euo pipefail` scripts.

# Repository root (this file lives in <root>/scripts/services/).
SVC_REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
# Persistent, gitignored home of installed tools and scratch run dirs.
SVC_HOME="$SVC_REPO_ROOT/.test-services"
# Scratch dir of the current run (set by svc_run_dir).
: "${SVC_RUN_DIR:=}"
# Stop functions of the services started so far, in start order.
if [[ -z "${SVC_STOPS+x}" ]]; then SVC_STOPS=(); fi
# Ports handed out in this shell, so two services never get the same one.
if [[ -z "${SVC_PORTS_TAKEN+x}" ]]; then SVC_PORTS_TAKEN=(); fi
SVC_APT_UPDATED="${SVC_APT_UPDATED:-0}"

# ---------------------------------------------------------------- output

svc_log() {
    if [[ -t 2 ]]; then
        printf '\033[1;34m==>\033[0m \033[1m%s\033[0m\n' "$*" >&2
    else
        printf '==> %s\n' "$*" >&2
    fi
}

svc_info() { printf '    %s\n' "$*" >&2; }

svc_err() {
    if [[ -t 2 ]]; then
        printf '\033[1;31merror:\033[0m %s\n' "$*" >&2
    else
        printf 'error: %s\n' "$*" >&2
    fi
}

# svc_show_log FILE [LINES]: print the tail of a service log (after a failure).
svc_show_log() {
    local f="$1" n="${2:-40}"
    [[ -f "$f" ]] || return 0
    printf -- '---- last %s lines of %s ----\n' "$n" "$f" >&2
    tail -n "$n" "$f" >&2 || true
    printf -- '---- end of %s ----\n' "$f" >&2
}

# ---------------------------------------------------------------- privileges

svc_is_root() { [[ "$(id -u)" == 0 ]]; }

# Prints the command prefix needed for root-only commands ("" or "sudo").
svc_sudo() {
    if svc_is_root; then
        printf ''
    elif command -v sudo >/dev/null 2>&1; then
        printf 'sudo'
    else
        svc_err "root rights are needed to install packages, but this is not root and sudo is missing"
        return 1
    fi
}

# svc_as USER CMD...: run CMD as USER when we are root (services refuse root or
# should not have it); run it as ourselves otherwise. Runs from / so that the
# target user never trips over an unreadable current directory.
svc_as() {
    local user="$1"
    shift
    if svc_is_root && [[ "$user" != root ]]; then
        local gid
        gid="$(id -g "$user")" || return 1
        (cd / && exec setpriv --reuid="$user" --regid="$gid" --clear-groups -- "$@")
    else
        (cd / && exec "$@")
    fi
}

# svc_spawn_as USER LOG CMD...: start CMD in the background as USER (as for
# svc_as), output to LOG; sets SVC_SPAWNED_PID to CMD's own pid.
svc_spawn_as() {
    local user="$1" log="$2" gid prefix=()
    shift 2
    if svc_is_root && [[ "$user" != root ]]; then
        gid="$(id -g "$user")" || return 1
        prefix=(setpriv --reuid="$user" --regid="$gid" --clear-groups --)
    fi
    (cd / && exec "${prefix[@]}" "$@") >"$log" 2>&1 </dev/null &
    # shellcheck disable=SC2034 # read by the service files
    SVC_SPAWNED_PID=$!
}

# svc_can USER TEST-ARGS...: does `test TEST-ARGS` hold for USER?
svc_can() {
    local user="$1"
    shift
    svc_as "$user" test "$@" 2>/dev/null
}

# ---------------------------------------------------------------- packages

# svc_apt_install PKG...: install the Debian packages that are not installed
# yet. `apt-get update` runs at most once per shell, and only when something is
# actually missing.
svc_apt_install() {
    local missing=() p sudo
    for p in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$p")
        fi
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    command -v apt-get >/dev/null 2>&1 || {
        svc_err "missing packages (${missing[*]}) and no apt-get to install them"
        return 1
    }
    sudo="$(svc_sudo)" || return 1
    mkdir -p "$SVC_HOME"
    local log="$SVC_HOME/apt.log" t0=$SECONDS
    : >"$log"
    if [[ "$SVC_APT_UPDATED" != 1 ]]; then
        svc_log "apt-get update"
        if ! $sudo env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=300 update >>"$log" 2>&1; then
            svc_err "apt-get update failed"
            svc_show_log "$log"
            return 1
        fi
        SVC_APT_UPDATED=1
    fi
    svc_log "apt-get install ${missing[*]}"
    if ! $sudo env DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=300 \
        -o Dpkg::Use-Pty=0 install --no-install-recommends "${missing[@]}" >>"$log" 2>&1; then
        svc_err "apt-get install ${missing[*]} failed"
        svc_show_log "$log"
        return 1
    fi
    svc_info "installed in $((SECONDS - t0)) s (log: ${log#"$SVC_REPO_ROOT"/})"
}

# svc_python: prints a python3 that can create venvs (installs python3-venv
# from Debian when the system python lacks ensurepip).
svc_python() {
    local py
    py="$(command -v python3 2>/dev/null || true)"
    if [[ -n "$py" ]] && "$py" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        printf '%s\n' "$py"
        return 0
    fi
    svc_apt_install python3 python3-venv || return 1
    py=/usr/bin/python3
    "$py" -c 'import venv, ensurepip' >/dev/null 2>&1 || {
        svc_err "$py cannot create virtual environments even after installing python3-venv"
        return 1
    }
    printf '%s\n' "$py"
}

# svc_venv DIR: make sure DIR is a working Python virtualenv.
svc_venv() {
    local dir="$1" py
    if [[ -x "$dir/bin/python" ]] && "$dir/bin/python" -c 'import sys' >/dev/null 2>&1 \
        && [[ -x "$dir/bin/pip" ]]; then
        return 0
    fi
    py="$(svc_python)" || return 1
    rm -rf "$dir"
    mkdir -p "$(dirname "$dir")"
    svc_log "creating Python venv $dir (with $py)"
    "$py" -m venv "$dir" || { rm -rf "$dir"; svc_err "python3 -m venv $dir failed"; return 1; }
}

# svc_pip_install VENV STAMP SPEC...: pip-install SPECs into VENV unless the
# stamp file (one per pinned set of versions) says it was already done.
# Serialised with flock, so that two runs in one checkout do not install into
# the same venv at once.
svc_pip_install() {
    local venv="$1" stamp="$2" fd rc
    if [[ -f "$venv/$stamp" && -x "$venv/bin/python" ]]; then
        return 0
    fi
    mkdir -p "$SVC_HOME" || return 1
    exec {fd}>"$SVC_HOME/.install.lock" || return 1
    if command -v flock >/dev/null 2>&1; then
        flock "$fd" || true
    fi
    _svc_pip_install_locked "$@"
    rc=$?
    exec {fd}>&-
    return "$rc"
}

_svc_pip_install_locked() {
    local venv="$1" stamp="$2"
    shift 2
    if [[ -f "$venv/$stamp" && -x "$venv/bin/python" ]]; then
        return 0
    fi
    svc_venv "$venv" || return 1
    svc_log "pip install $* (into ${venv#"$SVC_REPO_ROOT"/})"
    local t0=$SECONDS
    rm -f "$venv"/.msngate-stamp-*
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@" \
        || { svc_err "pip install $* failed"; return 1; }
    touch "$venv/$stamp"
    svc_info "installed in $((SECONDS - t0)) s"
}

# ---------------------------------------------------------------- scratch dirs

# svc_run_dir: create (once) the scratch dir of this run under
# .test-services/run-XXXXXX and export it as MSNGATE_TEST_RUN_DIR.
svc_run_dir() {
    if [[ -n "$SVC_RUN_DIR" && -d "$SVC_RUN_DIR" ]]; then
        return 0
    fi
    mkdir -p "$SVC_HOME" || return 1
    chmod 755 "$SVC_HOME" 2>/dev/null || true
    SVC_RUN_DIR="$(mktemp -d "$SVC_HOME/run-XXXXXX")" || return 1
    SVC_RUN_DIR="$(cd "$SVC_RUN_DIR" && pwd -P)"
    # unprivileged service users must be able to traverse it
    chmod 755 "$SVC_RUN_DIR"
    echo "$$" >"$SVC_RUN_DIR/.owner-pid"
    export MSNGATE_TEST_RUN_DIR="$SVC_RUN_DIR"
}

# svc_user_dir NAME USER: prints the absolute, physical path of a fresh
# directory $SVC_RUN_DIR/NAME that USER can write. When USER cannot reach the
# repository (for example a clone under /root while services run as
# `postgres`), the directory is created under ${TMPDIR:-/tmp} instead and
# $SVC_RUN_DIR/NAME becomes a symlink to it.
svc_user_dir() {
    local name="$1" user="$2" dir real
    svc_run_dir || return 1
    dir="$SVC_RUN_DIR/$name"
    rm -rf "$dir"
    mkdir -p "$dir" || return 1
    if svc_is_root && [[ "$user" != root ]]; then
        chown "$user:$(id -g "$user")" "$dir" || return 1
        if ! svc_can "$user" -w "$dir"; then
            rmdir "$dir"
            real="$(mktemp -d "${TMPDIR:-/tmp}/msngate-test-$name-XXXXXX")" || return 1
            chmod 755 "$real"
            chown "$user:$(id -g "$user")" "$real" || return 1
            ln -s "$real" "$dir"
            echo "$real" >>"$SVC_RUN_DIR/.extra-dirs"
        fi
    fi
    (cd "$dir" && pwd -P)
}

# svc_free_port: prints a TCP port on 127.0.0.1 that nothing listens on, out
# of 20000-28999 (below the kernel's ephemeral range, away from the defaults
# of every service involved).
svc_free_port() {
    local port i taken p
    for ((i = 0; i < 200; i++)); do
        port=$((20000 + RANDOM % 9000))
        taken=0
        for p in "${SVC_PORTS_TAKEN[@]}"; do [[ "$p" == "$port" ]] && taken=1; done
        [[ $taken == 1 ]] && continue
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            SVC_PORTS_TAKEN+=("$port")
            printf '%s\n' "$port"
            return 0
        fi
    done
    svc_err "no free TCP port found on 127.0.0.1"
    return 1
}

# svc_wait_port PORT TIMEOUT_S [PID]: wait until 127.0.0.1:PORT accepts TCP
# connections. Fails early if PID dies.
svc_wait_port() {
    local port="$1" timeout="$2" pid="${3:-}" deadline=$((SECONDS + $2))
    while ((SECONDS < deadline)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
            return 1
        fi
        sleep 0.05
    done
    return 1
}

# svc_http_ok URL: does URL answer 2xx?
svc_http_ok() {
    if command -v curl >/dev/null 2>&1; then
        curl -fsS --max-time 2 -o /dev/null "$1" 2>/dev/null
    else
        python3 - "$1" >/dev/null 2>&1 <<'EOF'
import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=2).read()
EOF
    fi
}

# ---------------------------------------------------------------- processes

# svc_pid_matches PID NEEDLE: is PID alive and does its command line contain
# NEEDLE (a path of this run)? Guards against killing a recycled PID.
svc_pid_matches() {
    local pid="$1" needle="$2"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    local args=()
    { mapfile -d '' -t args <"/proc/$pid/cmdline"; } 2>/dev/null || return 1
    [[ "${args[*]}" == *"$needle"* ]]
}

# svc_pids_matching NEEDLE: pids (one a line) of processes whose command line
# contains NEEDLE (a path unique to this run), excluding this shell.
svc_pids_matching() {
    local f pid args=()
    for f in /proc/[0-9]*/cmdline; do
        pid="${f#/proc/}"
        pid="${pid%/cmdline}"
        [[ "$pid" == "$$" || "$pid" == "${BASHPID:-}" ]] && continue
        { mapfile -d '' -t args <"$f"; } 2>/dev/null || continue
        if [[ "${args[*]}" == *"$1"* ]]; then
            printf '%s\n' "$pid"
        fi
    done
}

# svc_kill_matching NEEDLE [TIMEOUT_S]: stop every process whose command line
# contains NEEDLE (see svc_kill).
svc_kill_matching() {
    local pid
    for pid in $(svc_pids_matching "$1"); do
        svc_kill "$pid" "$1" "${2:-15}"
    done
    return 0
}

# svc_kill PID NEEDLE [TIMEOUT_S]: SIGTERM PID if it still is our process,
# wait for it, then SIGKILL.
svc_kill() {
    local pid="$1" needle="$2" timeout="${3:-15}" deadline
    svc_pid_matches "$pid" "$needle" || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    deadline=$((SECONDS + timeout))
    while ((SECONDS < deadline)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    svc_err "pid $pid did not stop on SIGTERM within ${timeout}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# svc_register_stop FN: remember FN for svc_stop_all (runs in reverse order).
svc_register_stop() {
    local f
    for f in "${SVC_STOPS[@]}"; do [[ "$f" == "$1" ]] && return 0; done
    SVC_STOPS+=("$1")
}

# svc_stop_all: stop every service started in this shell (never fails).
svc_stop_all() {
    local i
    for ((i = ${#SVC_STOPS[@]} - 1; i >= 0; i--)); do
        "${SVC_STOPS[$i]}" || svc_err "${SVC_STOPS[$i]} failed"
    done
    SVC_STOPS=()
    return 0
}

# svc_remove_run_dir DIR: delete a scratch dir and the /tmp dirs it links to.
svc_remove_run_dir() {
    local dir="$1" extra
    [[ -d "$dir" && "$dir" == "$SVC_HOME"/run-* ]] || return 0
    if [[ -f "$dir/.extra-dirs" ]]; then
        while IFS= read -r extra; do
            [[ "$extra" == "${TMPDIR:-/tmp}"/msngate-test-* || "$extra" == /tmp/msngate-test-* ]] \
                && rm -rf "$extra"
        done <"$dir/.extra-dirs"
    fi
    rm -rf "$dir"
}

# svc_cleanup: stop all services and delete this run's scratch dir (kept when
# MSNGATE_TEST_KEEP=1).
svc_cleanup() {
    svc_stop_all
    if [[ -n "$SVC_RUN_DIR" ]]; then
        if [[ "${MSNGATE_TEST_KEEP:-0}" == 1 ]]; then
            svc_info "kept scratch dir $SVC_RUN_DIR (MSNGATE_TEST_KEEP=1)"
        else
            svc_remove_run_dir "$SVC_RUN_DIR"
        fi
        SVC_RUN_DIR=""
        unset MSNGATE_TEST_RUN_DIR
    fi
    return 0
}

# svc_prune_stale_runs: remove scratch dirs of earlier runs whose owner process
# is gone (kept after a failure for inspection, or left by a killed run). Any
# service still running from such a dir (a process whose command line names a
# path inside it) is stopped first.
svc_prune_stale_runs() {
    local d owner extra needles n
    for d in "$SVC_HOME"/run-*; do
        [[ -d "$d" ]] || continue
        [[ "$d" == "$SVC_RUN_DIR" ]] && continue
        owner="$(cat "$d/.owner-pid" 2>/dev/null || true)"
        if [[ -n "$owner" ]] && kill -0 "$owner" 2>/dev/null; then
            continue
        fi
        needles=("$d")
        if [[ -f "$d/.extra-dirs" ]]; then
            while IFS= read -r extra; do needles+=("$extra"); done <"$d/.extra-dirs"
        fi
        for n in "${needles[@]}"; do
            svc_kill_matching "$n" 10
        done
        svc_remove_run_dir "$d"
    done
    return 0
}
