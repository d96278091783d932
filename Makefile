# vzpanel: `make run` starts the panel, `make test` runs the whole test suite.
# Both install what is missing first (Debian packages, a virtualenv, Python and
# front-end packages); a second run reuses what is there.

SHELL := /bin/bash
# Debian's own Python: the web server runs as an unprivileged user, who must be able to run it.
PYTHON ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || echo python3)
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

RUN_DEBS := lxc uidmap redis-server rsync zstd xz-utils busybox-static python3-venv iproute2 xfsprogs openssl debootstrap gnupg \
            openssh-client criu
# A host that receives migrations runs sshd; the tests run one in a network namespace.
AGENT_DEBS := openssh-server
# The VM lab (tests/vmlab): QEMU boots Debian 12 machines built with debootstrap.
TEST_DEBS := chromium postgresql gcc qemu-system-x86 qemu-utils $(AGENT_DEBS)
NODE_DEBS := nodejs npm

.PHONY: run test agent install install-test debs test-debs agent-debs venv assets setup clean

run: install setup
	$(PY) manage.py runpanel

# The whole suite on SQLite, then the database-touching tests again on a real PostgreSQL
# (the database several hosts share) that tests/with_postgres.py starts and removes.
test: install install-test
	$(PY) -m pytest
	$(PY) tests/with_postgres.py -q -m "not integration and not browser and not contract"

# Another host of the panel: install what its agent needs and run the agent (docs/operations.md):
#   make agent HOST=NAME PANEL_HOST_TOKEN=... REDIS_URL=redis://... PANEL_DATABASE_URL=postgresql://...
agent: debs agent-debs venv
	@test -n "$(HOST)" || { echo "make agent: give HOST=NAME (the host's name in the panel)"; exit 2; }
	$(PY) manage.py agent --host $(HOST)

install: debs venv assets

install-test: test-debs
	$(VENV)/bin/pip install -q -e ".[test]"

# Debian packages: only the missing ones are installed.
debs:
	@missing=$$(for p in $(RUN_DEBS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	command -v npm >/dev/null || missing="$$missing $(NODE_DEBS)"; \
	if [ -n "$$(echo $$missing)" ]; then \
	  echo "Installing Debian packages:" $$missing; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

agent-debs:
	@missing=$$(for p in $(AGENT_DEBS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$(echo $$missing)" ]; then \
	  echo "Installing Debian packages:" $$missing; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

test-debs:
	@missing=$$(for p in $(TEST_DEBS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$(echo $$missing)" ]; then \
	  echo "Installing Debian packages:" $$missing; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

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
	   node_modules/chart.js/dist/chart.umd.js static/vendor/
	touch $@

setup:
	$(PY) manage.py migrate --noinput -v 0
	$(PY) manage.py collectstatic --noinput -v 0
	$(PY) manage.py setup_panel

clean:
	rm -rf $(VENV) node_modules static/vendor
