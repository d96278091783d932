# vzpanel: `make run` starts the panel, `make test` runs the whole test suite.
# Both install what is missing first (Debian packages, a virtualenv, Python and
# front-end packages); a second run reuses what is there.

SHELL := /bin/bash
# Debian's own Python: the web server runs as an unprivileged user, who must be able to run it.
PYTHON ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || echo python3)
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

RUN_DEBS := lxc apparmor uidmap redis-server rsync zstd xz-utils busybox-static python3-venv iproute2 xfsprogs btrfs-progs openssl debootstrap gnupg \
            openssh-client criu
# A host that receives migrations runs sshd; the tests run one in a network namespace.
AGENT_DEBS := openssh-server
# The VM lab (tests/vmlab): QEMU boots Debian 12 machines built with debootstrap (with
# PRODUCTION_DEBS, read with `make -s print-production-debs`).
TEST_DEBS := chromium postgresql gcc systemd qemu-system-x86 qemu-utils $(AGENT_DEBS)
NODE_DEBS := nodejs npm
# A production install (deploy/install.sh) adds its HTTPS front; front-end files come from the checkout.
PRODUCTION_DEBS := $(RUN_DEBS) $(AGENT_DEBS) nginx

.PHONY: run test agent install install-test debs test-debs agent-debs venv assets setup clean \
        install-production upgrade-production production-debs print-production-debs wheelhouse shell-commands

run: install setup shell-commands
	$(PY) manage.py runpanel

# OpenVZ's commands on root's PATH: each a two-line wrapper that runs this checkout's
# `manage.py COMMAND "$@"` with its virtualenv (and ENV_FILE's settings, when given): no second
# implementation. The wrapper starts panel/cli_client.py (standard library only, ~10 ms), which
# hands the command to the panel's command server (manage.py cliserver, started by runpanel and
# vzpanel-cli.service) so that it does not pay Python's and Django's start-up each time, and runs
# `manage.py COMMAND` itself when there is no server. A file there that is not ours (no marker line) is never overwritten: nothing
# is written then. The production install calls this with its own directories:
#   make shell-commands SBIN_DIR=/usr/local/sbin APP_DIR=/opt/vzpanel/app VENV_DIR=/opt/vzpanel/venv \
#                       ENV_FILE=/etc/vzpanel/vzpanel.env
# (CHECK_PATHS=no: the install is staged under another root, where those do not exist yet.)
SBIN_DIR ?= /usr/local/sbin
APP_DIR ?= $(CURDIR)
VENV_DIR ?= $(CURDIR)/$(VENV)
ENV_FILE ?=
SHELL_COMMANDS := vzctl vzlist vzdump vzrestore vzmigrate vzcalc vzmemcheck
SHELL_COMMAND_MARK := \# vzpanel shell command

shell-commands:
	@for dir in "$(SBIN_DIR)" "$(APP_DIR)" "$(VENV_DIR)" "$(ENV_FILE)"; do \
	  case "$$dir" in *[\'\"\$$\`\\]*) echo "make shell-commands: $$dir: no quotes, \$$, \` or \\ in paths" >&2; exit 2;; esac; \
	done; \
	if [ "$(CHECK_PATHS)" != no ]; then \
	  test -x "$(VENV_DIR)/bin/python" || { echo "make shell-commands: no $(VENV_DIR)/bin/python" >&2; exit 2; }; \
	  test -f "$(APP_DIR)/manage.py" || { echo "make shell-commands: no $(APP_DIR)/manage.py" >&2; exit 2; }; \
	fi; \
	for cmd in $(SHELL_COMMANDS); do \
	  if [ -e "$(SBIN_DIR)/$$cmd" ] && ! grep -q '^$(SHELL_COMMAND_MARK)' "$(SBIN_DIR)/$$cmd"; then \
	    echo "make shell-commands: $(SBIN_DIR)/$$cmd is not vzpanel's; nothing was installed" >&2; exit 1; \
	  fi; \
	done; \
	mkdir -p "$(SBIN_DIR)"; \
	for cmd in $(SHELL_COMMANDS); do \
	  tmp=$$(mktemp "$(SBIN_DIR)/.$$cmd.XXXXXX") || exit 1; \
	  { echo '#!/bin/sh'; \
	    echo "$(SHELL_COMMAND_MARK): OpenVZ's $$cmd is the panel's own (make shell-commands writes this; edits are lost)"; \
	    if [ -n "$(ENV_FILE)" ]; then echo 'set -a; . "$(ENV_FILE)" || exit 1; set +a'; fi; \
	    echo "exec \"$(VENV_DIR)/bin/python\" -I -S \"$(APP_DIR)/panel/cli_client.py\" $$cmd \"\$$@\""; } > "$$tmp"; \
	  chmod 755 "$$tmp" && mv -f "$$tmp" "$(SBIN_DIR)/$$cmd" || { rm -f "$$tmp"; exit 1; }; \
	done; \
	echo "Installed in $(SBIN_DIR): $(SHELL_COMMANDS)"

# The whole suite in three pytest processes at once (tests/run_suite.py): the main lane on
# SQLite; beside it long mostly-waiting tests (marked own_lane) and the database-touching tests
# again on a real PostgreSQL that tests/with_postgres.py starts and removes. The real-host VM
# test (marked vm) runs by hand for now: see tests/run_suite.py.
test: install install-test
	$(PY) tests/run_suite.py

# Another host of the panel: install what its agent needs and run the agent (docs/operations.md):
#   make agent HOST=NAME PANEL_HOST_TOKEN=... REDIS_URL=redis://... PANEL_DATABASE_URL=postgresql://...
agent: debs agent-debs venv
	@test -n "$(HOST)" || { echo "make agent: give HOST=NAME (the host's name in the panel)"; exit 2; }
	$(PY) manage.py agent --host $(HOST)

install: debs venv assets

# A real host, for production (docs/operations.md, "Production install"): systemd units, HTTPS
# through nginx, configuration in /etc/vzpanel/vzpanel.env, state in /var/lib/vzpanel. As root:
#   make install-production [SERVER_NAMES=panel.example.org] [CERT=/path KEY=/path] [WHEELHOUSE=dir]
#   make upgrade-production     new code, Python packages, migrations, static files, restarts
install-production:
	deploy/install.sh

upgrade-production:
	deploy/install.sh --upgrade

# Wheels of the panel's Python packages, for an install on a host without network:
#   make wheelhouse WHEELHOUSE=dir, then make install-production WHEELHOUSE=dir there
wheelhouse: venv
	@test -n "$(WHEELHOUSE)" || { echo "make wheelhouse: give WHEELHOUSE=dir"; exit 2; }
	deploy/requirements.py > $(VENV)/production-requirements.txt
	$(VENV)/bin/pip wheel -q -w $(WHEELHOUSE) -r $(VENV)/production-requirements.txt

install-test: test-debs
	$(VENV)/bin/pip install -q -e ".[test]"

# Debian packages: only the missing ones are installed (apt-get update only then, so a host that
# has them all needs no network). $(1): the packages; $(2): a shell line that may add to $$missing.
define install_debs
	@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	$(2) \
	if [ -n "$$(echo $$missing)" ]; then \
	  echo "Installing Debian packages:" $$missing; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
endef

debs:
	$(call install_debs,$(RUN_DEBS),command -v npm >/dev/null || missing="$$missing $(NODE_DEBS)";)

agent-debs:
	$(call install_debs,$(AGENT_DEBS))

test-debs:
	$(call install_debs,$(TEST_DEBS))

print-production-debs:
	@echo $(PRODUCTION_DEBS)

production-debs:
	$(call install_debs,$(PRODUCTION_DEBS))

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e .
	touch $@

# Front-end libraries come from npm and are served from our own static files.
assets: static/vendor/.installed

static/vendor/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	mkdir -p static/vendor
	cp node_modules/bootstrap/dist/css/bootstrap.min.css node_modules/htmx.org/dist/htmx.min.js \
	   node_modules/chart.js/dist/chart.umd.js node_modules/@xterm/xterm/lib/xterm.js \
	   node_modules/@xterm/xterm/css/xterm.css node_modules/@xterm/addon-fit/lib/addon-fit.js static/vendor/
	touch $@

setup:
	$(PY) manage.py migrate --noinput -v 0
	$(PY) manage.py collectstatic --noinput -v 0
	$(PY) manage.py setup_panel

clean:
	rm -rf $(VENV) node_modules static/vendor
