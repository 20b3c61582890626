#!/usr/bin/env bash
# Install what the test suite needs on a Debian 12 machine, idempotently:
#   - Debian packages: Dovecot (IMAP, POP3, LMTP), GNU Mailutils' imap4d and pop3d (a second
#     real IMAP/POP3 server, run privately by tests/support/mailutils.py), openssl, fetchmail,
#     getmail6, python3-venv, and chromium (/usr/bin/chromium, driven headless by the pinned
#     Python playwright: no `playwright install`, no browser downloads), installed behind a
#     policy-rc.d that forbids starting services, so no system Dovecot, imap4d, pop3d or
#     fetchmail daemon starts; the scanners the filter stage talks to (rspamd, SpamAssassin's
#     spamd, ClamAV's clamd: run privately by tests/support/scanners.py, never as services)
#     and Dovecot's Sieve (Pigeonhole) for LMTP deliveries that run a user's Sieve script;
#   - no system Dovecot, imap4d or pop3d left running or listening on the standard ports
#     110/143/993/995;
#   - the unprivileged system user "mailhaul-test" that owns the Maildirs the test Dovecot serves;
#   - a PostgreSQL server on 127.0.0.1:5432 where the role postgres (and root) can log in to the
#     database "test" without a password: Debian's `postgresql` is installed (behind the same
#     policy-rc.d) only when nothing listens there, its cluster started when stopped, the role
#     and database created when missing, and trust for them on 127.0.0.1 added to pg_hba.conf
#     only when a password-less login fails. Skipped with MAILHAUL_TEST_DATABASES=sqlite;
#   - the project venv .venv with `pip install -e '.[test,postgres]'`.
# Quick when everything is already there. Environment: PYTHON (interpreter for a new venv),
# MAILHAUL_TEST_DATABASES (as for the tests: default sqlite,postgresql).
set -euo pipefail

PACKAGES=(
    dovecot-core dovecot-imapd dovecot-pop3d dovecot-lmtpd
    mailutils-imap4d mailutils-pop3d
    openssl fetchmail getmail6 python3-venv
    chromium
    rspamd spamassassin spamd clamav-daemon dovecot-sieve
)
readonly TEST_USER=mailhaul-test
readonly PG_PORT=5432
readonly PG_DATABASE=test
readonly PG_ROLES=(postgres root)
readonly POLICY=/usr/sbin/policy-rc.d
readonly POLICY_BACKUP=/usr/sbin/policy-rc.d.mailhaul-backup

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO_ROOT

say() { printf 'install-test-deps: %s\n' "$*"; }
die() { printf 'install-test-deps: error: %s\n' "$*" >&2; exit 1; }

if [[ "$(id -u)" -eq 0 ]]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
else
    SUDO=()
fi
as_root() {
    if [[ "$(id -u)" -ne 0 && ${#SUDO[@]} -eq 0 ]]; then
        die "need root (or sudo) for: $*"
    fi
    "${SUDO[@]}" "$@"
}

# --- Debian packages --------------------------------------------------------------------------

missing_packages() {
    local pkg status
    for pkg in "${PACKAGES[@]}"; do
        status="$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)"
        [[ "$status" == installed ]] || printf '%s\n' "$pkg"
    done
}

apt_lists_have_candidates() {
    # True when the apt lists know an installable version of every given package.
    local pkg candidate
    for pkg in "$@"; do
        candidate="$(apt-cache policy "$pkg" 2>/dev/null | awk '/Candidate:/ {print $2}')"
        [[ -n "$candidate" && "$candidate" != "(none)" ]] || return 1
    done
}

restore_policy() {
    if [[ -e "$POLICY_BACKUP" ]]; then
        as_root mv -f "$POLICY_BACKUP" "$POLICY"
    else
        as_root rm -f "$POLICY"
    fi
}

install_packages() {
    local -a missing=("$@")
    if [[ -e "$POLICY" ]]; then
        as_root mv -f "$POLICY" "$POLICY_BACKUP"
    fi
    trap 'restore_policy' EXIT
    printf '#!/bin/sh\n# mailhaul install-test-deps: start no services during apt-get install\nexit 101\n' \
        | as_root tee "$POLICY" >/dev/null
    as_root chmod 0755 "$POLICY"

    if ! apt_lists_have_candidates "${missing[@]}"; then
        say "apt-get update"
        as_root apt-get update -qq
    fi
    say "apt-get install ${missing[*]}"
    local -a apt=(env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq
        --no-install-recommends -o Dpkg::Options::=--force-confdef
        -o Dpkg::Options::=--force-confold)
    if ! as_root "${apt[@]}" "${missing[@]}" >/dev/null; then
        # Stale lists (a package version gone from the mirror): refresh once and retry.
        say "install failed; apt-get update and retry"
        as_root apt-get update -qq
        as_root "${apt[@]}" "${missing[@]}" >/dev/null
    fi
    restore_policy
    trap - EXIT
}

# A backup left behind by a killed earlier run is the machine's original policy: put it back.
if [[ -e "$POLICY_BACKUP" ]]; then
    say "restoring $POLICY left by an interrupted run"
    restore_policy
fi

# --- PostgreSQL: is one needed, and is one there? ---------------------------------------------

want_postgres() {
    [[ ",${MAILHAUL_TEST_DATABASES:-sqlite,postgresql}," == *,postgresql,* ]]
}
pg_port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$PG_PORT") 2>/dev/null; }
pg_usable() {
    # A password-less TCP login of every role to the test database.
    local role
    command -v psql >/dev/null 2>&1 || return 1
    for role in "${PG_ROLES[@]}"; do
        PGCONNECT_TIMEOUT=5 psql -w -X -q -At -h 127.0.0.1 -p "$PG_PORT" -U "$role" \
            -d "$PG_DATABASE" -c 'select 1' >/dev/null 2>&1 || return 1
    done
}

PG_READY=0
if want_postgres; then
    if pg_usable; then
        PG_READY=1
    elif ! pg_port_open; then
        # Nothing listening: the local cluster is installed below if missing, then started.
        PACKAGES+=(postgresql)
    elif ! command -v psql >/dev/null 2>&1; then
        PACKAGES+=(postgresql-client)  # a server is there (a CI service?); we need psql
    fi
fi

mapfile -t MISSING < <(missing_packages)
if [[ ${#MISSING[@]} -gt 0 ]]; then
    install_packages "${MISSING[@]}"
else
    say "Debian packages present"
fi

# --- no system Dovecot, imap4d or pop3d: none running, none on the standard ports -------------

stop_system_dovecot() {
    local pidfile=/run/dovecot/master.pid pid
    if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
        for unit in dovecot.service dovecot.socket fetchmail.service \
            imap4d.service imap4d.socket pop3d.service pop3d.socket \
            mailutils-imap4d.service mailutils-pop3d.service; do
            if systemctl is-enabled --quiet "$unit" 2>/dev/null \
                || systemctl is-active --quiet "$unit" 2>/dev/null; then
                say "disabling and stopping $unit"
                as_root systemctl disable --now "$unit" >/dev/null 2>&1 || true
            fi
        done
    fi
    if [[ -r "$pidfile" ]]; then
        pid="$(cat "$pidfile")"
        if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
            say "stopping the system dovecot (pid $pid)"
            as_root kill -TERM "$pid" || true
            for _ in $(seq 50); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            if kill -0 "$pid" 2>/dev/null; then as_root kill -KILL "$pid" || true; fi
        fi
    fi
}

stop_system_mailutils() {
    # A system imap4d/pop3d (started by an inetd or a daemon of its own: the packages ship
    # no service, but an admin's setup may) is one not run by the test suite, whose private
    # servers always get `--no-site-config`.
    local pid args
    for pid in $(pgrep -x 'imap4d|pop3d' || true); do
        args="$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" || true)"
        [[ "$args" == *--no-site-config* ]] && continue
        say "stopping the system ${args%% *} (pid $pid)"
        as_root kill -TERM "$pid" 2>/dev/null || true
    done
}

standard_port_listeners() {
    # Lines of `ss` output for dovecot, imap4d or pop3d processes listening on
    # 110/143/993/995 (any address).
    command -v ss >/dev/null 2>&1 || return 0
    as_root ss -Hltnp 2>/dev/null \
        | awk '$4 ~ /:(110|143|993|995)$/' | grep -iE 'dovecot|imap4d|pop3d' || true
}

stop_system_dovecot
stop_system_mailutils
listeners="$(standard_port_listeners)"
if [[ -n "$listeners" ]]; then
    # Not the pid-file master: kill the processes that hold the standard ports.
    pids="$(grep -o 'pid=[0-9]*' <<<"$listeners" | cut -d= -f2 | sort -u)"
    say "killing mail server processes on standard ports: $(tr '\n' ' ' <<<"$pids")"
    # shellcheck disable=SC2086
    as_root kill -TERM $pids 2>/dev/null || true
    for _ in $(seq 50); do
        [[ -z "$(standard_port_listeners)" ]] && break
        sleep 0.1
    done
    # shellcheck disable=SC2086
    [[ -z "$(standard_port_listeners)" ]] || as_root kill -KILL $pids 2>/dev/null || true
    sleep 0.2
    listeners="$(standard_port_listeners)"
    [[ -z "$listeners" ]] || die "a mail server still listens on a standard port: $listeners"
fi

# --- PostgreSQL server, role and database ------------------------------------------------------

as_postgres_psql() {
    # psql as the postgres superuser over the cluster's Unix socket (Debian's peer auth).
    (cd / && as_root runuser -u postgres -- psql -w -X -q -At -p "$PG_PORT" "$@")
}

local_cluster() {
    # "version name" of the local cluster configured for $PG_PORT, if any.
    command -v pg_lsclusters >/dev/null 2>&1 || return 0
    pg_lsclusters -h 2>/dev/null | awk -v port="$PG_PORT" '$3 == port {print $1, $2; exit}'
}

ensure_postgres() {
    local cluster version name role hba
    cluster="$(local_cluster)"
    if ! pg_port_open; then
        [[ -n "$cluster" ]] || die "no PostgreSQL cluster for port $PG_PORT (pg_lsclusters)"
        read -r version name <<<"$cluster"
        say "starting PostgreSQL cluster $version/$name"
        as_root pg_ctlcluster --skip-systemctl-redirect "$version" "$name" start
        for _ in $(seq 100); do
            pg_port_open && break
            sleep 0.1
        done
        pg_port_open || die "PostgreSQL $version/$name did not start listening on $PG_PORT"
    fi
    pg_usable && return 0
    [[ -n "$cluster" ]] || die "PostgreSQL on 127.0.0.1:$PG_PORT refuses a password-less login of \
${PG_ROLES[*]} to database $PG_DATABASE, and it is not a local cluster this script can set up"
    read -r version name <<<"$cluster"
    for role in "${PG_ROLES[@]}"; do
        if [[ "$(as_postgres_psql -c "select 1 from pg_roles where rolname = '$role'")" != 1 ]]
        then
            say "creating PostgreSQL role $role"
            as_postgres_psql -c "create role \"$role\" login superuser"
        fi
    done
    if [[ "$(as_postgres_psql -c "select 1 from pg_database where datname = '$PG_DATABASE'")" \
        != 1 ]]; then
        say "creating PostgreSQL database $PG_DATABASE"
        as_postgres_psql -c "create database \"$PG_DATABASE\" owner postgres"
    fi
    pg_usable && return 0
    # Still refused: Debian's default asks for a password on 127.0.0.1. Let the test roles in
    # without one, from 127.0.0.1 only (first match wins in pg_hba.conf, so insert on top).
    hba="$(as_postgres_psql -c 'show hba_file')"
    if ! as_root grep -q 'mailhaul install-test-deps' "$hba"; then
        say "trusting ${PG_ROLES[*]} on 127.0.0.1 in $hba"
        local top
        top="$(mktemp)"
        {
            printf '# mailhaul install-test-deps: password-less test logins\n'
            printf 'host all %s 127.0.0.1/32 trust\n' "$(IFS=,; echo "${PG_ROLES[*]}")"
            as_root cat "$hba"
        } >"$top"
        as_root cp "$top" "$hba"  # cp keeps the file's owner and mode
        rm -f "$top"
        as_postgres_psql -c 'select pg_reload_conf()' >/dev/null
        sleep 0.2
    fi
    pg_usable || die "PostgreSQL on 127.0.0.1:$PG_PORT still refuses ${PG_ROLES[*]}"
}

if want_postgres; then
    if [[ "$PG_READY" -eq 1 ]]; then
        say "PostgreSQL ready on 127.0.0.1:$PG_PORT"
    else
        ensure_postgres
        say "PostgreSQL ready on 127.0.0.1:$PG_PORT"
    fi
fi

# --- the unprivileged mail user --------------------------------------------------------------

if ! getent passwd "$TEST_USER" >/dev/null; then
    say "creating system user $TEST_USER"
    as_root useradd --system --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin --comment "mailhaul test Maildirs" "$TEST_USER"
fi

# --- the project venv --------------------------------------------------------------------------

VENV="$REPO_ROOT/.venv"
if [[ ! -x "$VENV/bin/python" ]]; then
    python="${PYTHON:-python3}"
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "$python is older than 3.11; set PYTHON to a Python 3.11+ interpreter"
    say "creating $VENV with $("$python" --version 2>&1)"
    "$python" -m venv "$VENV"
fi

# Reinstall only when pyproject.toml changed since the last successful install, or the
# package or a test tool went missing from the venv.
venv_complete() {
    local tool
    for tool in pytest ruff mypy coverage; do
        [[ -x "$VENV/bin/$tool" ]] || return 1
    done
    "$VENV/bin/python" -c 'import mailhaul' >/dev/null 2>&1
}
STAMP="$VENV/.mailhaul-install-stamp"
want="$(sha256sum "$REPO_ROOT/pyproject.toml" | cut -d' ' -f1) $REPO_ROOT"
have="$(cat "$STAMP" 2>/dev/null || true)"
if [[ "$want" != "$have" ]] || ! venv_complete; then
    say "pip install -e '.[test,postgres]' into $VENV"
    pip_log="$(mktemp)"
    if ! "$VENV/bin/python" -m pip install --disable-pip-version-check \
        -e "${REPO_ROOT}[test,postgres]" >"$pip_log" 2>&1; then
        cat "$pip_log" >&2
        rm -f "$pip_log"
        die "pip install failed"
    fi
    rm -f "$pip_log"
    printf '%s\n' "$want" >"$STAMP"
else
    say "venv up to date"
fi
say "done"
