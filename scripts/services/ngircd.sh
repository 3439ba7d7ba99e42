# shellcheck shell=bash
# Throwaway ngircd IRC server for the test suite (source lib.sh first).
#
#   ngircd_install  Debian's ngircd unless present
#   ngircd_start    write a config in the run's scratch dir and start ngircd on
#                   127.0.0.1:<free port> (as nobody when we are root)
#   ngircd_stop     stop it (also a copy that a test restarted)
#
# Limits lifted (MaxConnectionsIP = 0, MaxPenaltyTime = 0) and no DNS/ident
# lookups (docs/testing.md describes the setup). ngircd does not accept
# inline `;` comments after a value, so comments sit on their own lines.

NGIRCD_BIN="${NGIRCD_BIN:-}"
NGIRCD_DIR=""
NGIRCD_PORT=""
NGIRCD_PID=""
NGIRCD_USER=""

ngircd_find() {
    if [[ -n "$NGIRCD_BIN" && -x "$NGIRCD_BIN" ]]; then return 0; fi
    if [[ -x /usr/sbin/ngircd ]]; then NGIRCD_BIN=/usr/sbin/ngircd; return 0; fi
    NGIRCD_BIN="$(command -v ngircd 2>/dev/null || true)"
    [[ -n "$NGIRCD_BIN" ]]
}

ngircd_install() {
    ngircd_find && return 0
    svc_apt_install ngircd || return 1
    ngircd_find || { svc_err "ngircd was installed but not found"; return 1; }
}

ngircd_start() {
    local t0=$SECONDS conf
    ngircd_install || return 1
    svc_run_dir || return 1
    if svc_is_root; then NGIRCD_USER=nobody; else NGIRCD_USER="$(id -un)"; fi
    NGIRCD_DIR="$(svc_user_dir ngircd "$NGIRCD_USER")" || return 1
    NGIRCD_PORT="$(svc_free_port)" || return 1
    conf="$NGIRCD_DIR/ngircd.conf"
    svc_as "$NGIRCD_USER" tee "$conf" >/dev/null <<EOF
# msngate test IRC server (written by scripts/services/ngircd.sh)
[Global]
	Name = irc.test
	Info = msngate test IRC server
	AdminInfo1 = test
	AdminInfo2 = test
	AdminEMail = test@irc.test
	Listen = 127.0.0.1
	Ports = $NGIRCD_PORT
	PidFile = $NGIRCD_DIR/ngircd.pid
	MotdPhrase = "test server"
[Limits]
	# default 5 would cap one-connection-per-MSN-user tests
	MaxConnectionsIP = 0
	MaxJoins = 0
	MaxNickLength = 30
	# 0 disables the per-command penalty (flood throttling)
	MaxPenaltyTime = 0
[Options]
	# no reverse-DNS/ident lookups: nothing leaves loopback
	DNS = no
	Ident = no
	PAM = no
EOF
    if ! svc_as "$NGIRCD_USER" "$NGIRCD_BIN" --configtest -f "$conf" >"$NGIRCD_DIR/configtest.log" 2>&1; then
        svc_err "ngircd --configtest failed"
        svc_show_log "$NGIRCD_DIR/configtest.log"
        return 1
    fi

    svc_log "ngircd $("$NGIRCD_BIN" --version 2>/dev/null | head -n 1 | awk '{print $2}' | cut -d- -f1): starting on 127.0.0.1:$NGIRCD_PORT as $NGIRCD_USER"
    svc_spawn_as "$NGIRCD_USER" "$NGIRCD_DIR/ngircd.log" "$NGIRCD_BIN" -n -f "$conf" || return 1
    NGIRCD_PID="$SVC_SPAWNED_PID"
    svc_register_stop ngircd_stop
    if ! svc_wait_port "$NGIRCD_PORT" 15 "$NGIRCD_PID"; then
        svc_err "ngircd did not listen on 127.0.0.1:$NGIRCD_PORT"
        svc_show_log "$NGIRCD_DIR/ngircd.log"
        return 1
    fi
    export MSNGATE_TEST_IRC_ADDR="127.0.0.1:$NGIRCD_PORT"
    export MSNGATE_TEST_NGIRCD_CONF="$conf"
    export MSNGATE_TEST_NGIRCD_BIN="$NGIRCD_BIN"
    svc_info "ngircd ready at $MSNGATE_TEST_IRC_ADDR in $((SECONDS - t0)) s"
}

ngircd_stop() {
    [[ -n "$NGIRCD_DIR" ]] || return 0
    svc_log "stopping ngircd (127.0.0.1:$NGIRCD_PORT)"
    [[ -n "$NGIRCD_PID" ]] && svc_kill "$NGIRCD_PID" "$NGIRCD_DIR" 10
    # a test may have restarted it: stop whatever runs this run's config
    svc_kill_matching "$NGIRCD_DIR/ngircd.conf" 10
    wait "$NGIRCD_PID" 2>/dev/null || true
    unset MSNGATE_TEST_IRC_ADDR MSNGATE_TEST_NGIRCD_CONF MSNGATE_TEST_NGIRCD_BIN
    NGIRCD_DIR=""
    NGIRCD_PID=""
    return 0
}
