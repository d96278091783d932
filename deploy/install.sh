#!/bin/bash
# Install vzpanel for production on this Debian host, or upgrade an installed one
# (docs/operations.md, "Production install"). As root, from a checkout:
#   deploy/install.sh              what `make install-production` runs
#   deploy/install.sh --upgrade    what `make upgrade-production` runs
# Variables, from the environment or make's command line:
#   SERVER_NAMES  names and addresses the panel answers to besides this machine's own
#                 (comma or space separated; the first is the panel's address in emails)
#   CERT, KEY     the administrator's certificate (with its chain) and key; without them a
#                 self-signed certificate is made once
#   WHEELHOUSE    a directory of wheels to install the Python packages from, offline
#                 (PIP_FIND_LINKS and PIP_NO_INDEX in the environment work as well)
#   INSTALL_ROOT  lay the files out under this directory instead of /, and only print what would
#                 change the running system (packages, users, services, the database): for tests
set -euo pipefail

MODE=install
case "${1:-}" in
    "") ;;
    --upgrade) MODE=upgrade ;;
    *) echo "usage: $0 [--upgrade]" >&2; exit 2 ;;
esac

SRC=$(cd "$(dirname "$0")/.." && pwd)
ROOT=${INSTALL_ROOT:-}
WEB_USER=vzpanel
PREFIX=/opt/vzpanel
APP=$PREFIX/app
VENV=$PREFIX/venv
ETC=/etc/vzpanel
ENV_FILE=$ETC/vzpanel.env
STATE=/var/lib/vzpanel
VAR_DIR=$STATE/panel
SERVICES="vzpanel-redis.service vzpanel-agent.service vzpanel-scheduler.service vzpanel-web.service vzpanel-consoles.service vzpanel-cli.service"
UNITS="vzpanel.target vzpanel-web.socket vzpanel-consoles.socket $SERVICES"

say() { echo "[vzpanel ${SECONDS}s] $*"; }
die() { echo "[vzpanel] error: $*" >&2; exit 1; }

# What changes the running system (packages, users, services, the database) goes through here:
# with INSTALL_ROOT it is only printed.
system() {
    if [ -n "$ROOT" ]; then
        say "INSTALL_ROOT is set; would run: $*"
    else
        "$@"
    fi
}

# manage.py with the installed configuration, as root (migrations, static files, set-up).
manage() {
    (set -a; . "$ENV_FILE"; set +a; cd "$APP"; "$VENV/bin/python" manage.py "$@")
}

install_packages() {
    say "Debian packages"
    system make -s -C "$SRC" production-debs
    if [ ! -f "$SRC/static/vendor/htmx.min.js" ]; then
        say "no front-end files in $SRC/static/vendor: building them with npm (make assets)"
        system make -s -C "$SRC" debs assets
    fi
}

web_user() {
    if ! getent passwd "$WEB_USER" >/dev/null; then
        [ -z "$ROOT" ] || die "the user $WEB_USER does not exist (an install without INSTALL_ROOT makes it)"
        useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$WEB_USER"
        say "made the system user $WEB_USER for the web server and the scheduler"
    fi
}

# The code goes to /opt/vzpanel/app, root's and not writable by anyone else (the agent runs it as
# root), without the checkout's state, virtualenv or node_modules; the old copy is swapped out whole.
deploy_code() {
    local target=$ROOT$APP
    say "code: $SRC -> $APP"
    rm -rf "$target.new" "$target.old"
    mkdir -p "$target.new"
    tar -C "$SRC" --exclude=./.git --exclude=./.venv --exclude=./node_modules --exclude=./var \
        --exclude=./staticfiles --exclude=./.pytest_cache --exclude=__pycache__ --exclude='*.pyc' \
        --exclude='*.egg-info' --owner=0 --group=0 --mode=go-w -cf - . |
        tar -C "$target.new" --no-same-owner -xf -
    if [ -d "$target" ]; then
        mv "$target" "$target.old"
    fi
    mv "$target.new" "$target"
    rm -rf "$target.old"
}

# Only the dependencies from pyproject.toml: the code runs from $APP, nothing is built.
python_packages() {
    local args=(-q --disable-pip-version-check)
    if [ -n "${WHEELHOUSE:-}" ]; then
        args+=(--no-index --find-links "$WHEELHOUSE")
    fi
    "$ROOT$APP/deploy/requirements.py" "$ROOT$APP/pyproject.toml" > "$ROOT$PREFIX/requirements.txt"
    if [ -n "$ROOT" ]; then
        say "INSTALL_ROOT is set; would make the virtualenv $VENV and install $PREFIX/requirements.txt"
        return
    fi
    say "Python packages into $VENV${WHEELHOUSE:+ (from $WHEELHOUSE only)}"
    [ -x "$VENV/bin/python" ] || /usr/bin/python3 -m venv "$VENV"
    "$VENV/bin/pip" install "${args[@]}" -r "$PREFIX/requirements.txt"
}

# This machine's names and addresses, the administrator's first: one a line, no repeats.
names() {
    local fqdn
    fqdn=$(hostname -f 2>/dev/null || true)
    { echo "${SERVER_NAMES:-}" | tr ',' ' '; echo "$fqdn" "$(hostname -s)" localhost
      hostname -I 2>/dev/null || true; echo 127.0.0.1 ::1; } | tr -s ' \t' '\n\n' | awk 'NF && !seen[$0]++'
}

is_address() { [[ $1 == *:* || $1 =~ ^[0-9.]+$ ]]; }

# Written once; an upgrade or another install keeps it (and its secret key) as it is.
env_file() {
    local file=$ROOT$ENV_FILE name allowed="" primary
    install -d -m 0755 "$ROOT$ETC"
    if [ -e "$file" ]; then
        say "keeping $ENV_FILE"
    else
        for name in $(names); do
            if [[ $name == *:* ]]; then name="[$name]"; fi
            allowed="$allowed${allowed:+,}$name"
        done
        primary=$(names | head -n 1)
        if [[ $primary == *:* ]]; then primary="[$primary]"; fi
        (umask 077; cat > "$file.new" <<EOF
# vzpanel's configuration, read by every vzpanel unit and by vzpanel-manage (docs/operations.md,
# "Production install"; every variable: README.md, "Configuration"). Written once at install;
# upgrades never change it. root:$WEB_USER 0640: it holds the secret key. Values with spaces or
# characters special to the shell go in double quotes. After a change:
#   systemctl restart vzpanel.target
PANEL_ENV=production
PANEL_SECRET_KEY=$(/usr/bin/python3 -c 'import secrets; print(secrets.token_urlsafe(50))')
PANEL_ALLOWED_HOSTS=$allowed
PANEL_URL=https://$primary
# This machine as a host of the panel (its name when installed).
PANEL_HOST_NAME=$(hostname -s)
# State: the database, Redis, the admin password (back up $STATE); collected static files (nginx).
PANEL_VAR_DIR=$VAR_DIR
PANEL_AGENT_DATA_DIR=$STATE/agent
PANEL_STATIC_ROOT=$PREFIX/static
PANEL_WEB_USER=$WEB_USER
PANEL_WEB_WORKERS=3
# Seconds a stopping agent lets running tasks finish. vzpanel-agent.service's TimeoutStopSec (360)
# must stay above this + 30: raise it too (systemctl edit vzpanel-agent) if you raise this.
PANEL_STOP_GRACE=300
EOF
        )
        mv "$file.new" "$file"
        say "wrote $ENV_FILE (answers to: $allowed)"
    fi
    chown root:"$WEB_USER" "$file"
    chmod 0640 "$file"
}

# /etc/vzpanel/tls/{cert,key}.pem, which nginx reads: links to CERT and KEY when given, otherwise
# a self-signed certificate for this machine's names and addresses, made once.
certificate() {
    local dir=$ROOT$ETC/tls san="" name
    install -d -m 0700 "$dir"
    if [ -n "${CERT:-}${KEY:-}" ]; then
        ln -sfn "$(readlink -f "$CERT")" "$dir/cert.pem"
        ln -sfn "$(readlink -f "$KEY")" "$dir/key.pem"
        say "HTTPS with the certificate $CERT"
    elif [ -e "$dir/cert.pem" ]; then
        say "keeping the certificate in $ETC/tls"
    else
        for name in $(names); do
            if is_address "$name"; then san="$san${san:+,}IP:$name"; else san="$san${san:+,}DNS:$name"; fi
        done
        (umask 077; openssl req -x509 -newkey rsa:3072 -sha256 -days 3650 -nodes -subj "/CN=$(names | head -n 1)" \
            -addext "subjectAltName=$san" -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null)
        chmod 0644 "$dir/cert.pem"
        say "made a self-signed certificate for $san ($ETC/tls/cert.pem: give it to browsers"
        say "  to trust, or install your own with CERT=/path KEY=/path and run this again)"
    fi
}

nginx_site() {
    install -D -m 0644 "$ROOT$APP/deploy/nginx/vzpanel.conf" "$ROOT/etc/nginx/sites-available/vzpanel"
    install -d -m 0755 "$ROOT/etc/nginx/sites-enabled" "$ROOT$ETC/nginx.d"
    ln -sfn /etc/nginx/sites-available/vzpanel "$ROOT/etc/nginx/sites-enabled/vzpanel"
    if [ -e "$ROOT/etc/nginx/sites-enabled/default" ] || [ -L "$ROOT/etc/nginx/sites-enabled/default" ]; then
        rm -f "$ROOT/etc/nginx/sites-enabled/default"
        say "disabled nginx's default site (the panel's takes ports 80 and 443)"
    fi
}

units() {
    local unit
    for unit in $UNITS; do
        install -D -m 0644 "$ROOT$APP/deploy/systemd/$unit" "$ROOT/etc/systemd/system/$unit"
    done
    install -D -m 0644 "$ROOT$APP/deploy/systemd/lxc.service.d/vzpanel.conf" \
        "$ROOT/etc/systemd/system/lxc.service.d/vzpanel.conf"
    install -D -m 0755 "$ROOT$APP/deploy/vzpanel-manage" "$ROOT/usr/local/sbin/vzpanel-manage"
    # OpenVZ's own command names (vzctl, vzlist, vzdump, ...) on root's PATH, with this configuration.
    make -s -C "$SRC" shell-commands SBIN_DIR="$ROOT/usr/local/sbin" APP_DIR="$APP" VENV_DIR="$VENV" \
        ENV_FILE="$ENV_FILE" CHECK_PATHS=${ROOT:+no}  # staged: no virtualenv was made
    system systemctl daemon-reload
}

# $STATE itself is root's: the agent's directory must not sit in one the web user can write to.
state_dirs() {
    install -d -m 0755 "$ROOT$STATE"
    [ -d "$ROOT$STATE/agent" ] || install -d -m 0700 "$ROOT$STATE/agent"
    [ -d "$ROOT$VAR_DIR" ] || install -d -m 0770 -g "$WEB_USER" "$ROOT$VAR_DIR"
}

# As `make run` does: migrations, static files, then setup_panel (the admin user, this host,
# the busybox template, the web user's files).
database() {
    if [ -n "$ROOT" ]; then
        say "INSTALL_ROOT is set; would run manage.py migrate, collectstatic and setup_panel"
        return
    fi
    say "database: migrations"
    manage migrate --noinput -v 0
    say "static files"
    manage collectstatic --noinput -v 0
    say "set-up: the admin user, this host, the default OS template"
    manage setup_panel
    chmod o+x "$VAR_DIR"  # setup_panel makes it 0770; redis, not in the group, enters its own two
}

start_services() {
    say "services"
    if [ "$MODE" = install ]; then
        say "Debian's own redis-server (no password, 127.0.0.1:6379) is not used: disabling it"
        system systemctl disable --now redis-server.service
        system systemctl enable vzpanel.target vzpanel-web.socket vzpanel-consoles.socket $SERVICES
        system systemctl start vzpanel.target
    else
        system systemctl start vzpanel-redis.service  # kept running: it runs none of the panel's code
        system systemctl enable vzpanel-consoles.socket vzpanel-consoles.service vzpanel-cli.service  # new in an upgrade
        system systemctl restart vzpanel-web.service vzpanel-consoles.service vzpanel-scheduler.service \
            vzpanel-cli.service
        say "restarting the host agent last: its running tasks get up to PANEL_STOP_GRACE seconds"
        system systemctl restart vzpanel-agent.service
    fi
    system nginx -t -q
    system systemctl reload-or-restart nginx.service
}

main() {
    [ "$(id -u)" = 0 ] || die "run this as root"
    # Bad input changes nothing: everything is checked before the first step.
    [[ ${SERVER_NAMES:-} =~ ^[A-Za-z0-9.:,\ -]*$ ]] || die "SERVER_NAMES: host names and addresses only"
    if [ -n "${CERT:-}${KEY:-}" ] && ! { [ -f "${CERT:-}" ] && [ -f "${KEY:-}" ]; }; then
        die "CERT and KEY must both name files"
    fi
    if [ "$MODE" = upgrade ] && [ ! -e "$ROOT$ENV_FILE" ]; then
        die "$ENV_FILE is missing: is vzpanel installed here? (make install-production)"
    fi
    if [ "$MODE" = install ]; then
        install_packages
        web_user
    fi
    deploy_code
    python_packages
    env_file
    certificate
    nginx_site
    units
    state_dirs
    database
    start_services
    say "done ($MODE). The panel: $(sed -n 's/^PANEL_URL=//p' "$ROOT$ENV_FILE")/"
    say "  admin user 'admin': its first password is in $VAR_DIR/admin-password (root only)"
    say "  logs: journalctl -u 'vzpanel*'    state to back up: $STATE"
}

main
