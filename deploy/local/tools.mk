# Tools beyond the Python environment. Included by the root Makefile (`include deploy/local/tools.mk`).
#
#   make tools        installs Debian's `prometheus` package (promtool, and the prometheus server the
#                     dashboard test starts) when either command is missing; apt-get, as root or via sudo.
#                     Nothing happens when both are there (any Prometheus >= 2.42 on the PATH will do).
#   make dashboards   rewrites the Grafana dashboards, the index recording rules and docs/dashboards.md
#                     from deploy/grafana/build_dashboards.py (in the project's .venv: the list of
#                     figures is tthc_core.indices.FIGURES)
#   make rules-test   promtool check rules + promtool test rules on deploy/prometheus/ (also run by pytest,
#                     tests/unit/test_promtool_rules.py)
#
# Note: on a machine running systemd, installing the Debian package also enables and starts a
# `prometheus` service on :9090 (`sudo systemctl disable --now prometheus` if you do not want it); the
# tests never use it, they start their own on a free port.

TOOLS_MK_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
TOOLS_ROOT := $(abspath $(TOOLS_MK_DIR)/../..)

PROMTOOL ?= promtool
PROMETHEUS_BIN ?= prometheus
TOOLS_SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
# Waits for another apt-get to release the dpkg lock instead of failing at once.
TOOLS_APT := $(TOOLS_SUDO) env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600

.PHONY: tools dashboards rules-test

tools:
	@if command -v $(PROMTOOL) >/dev/null 2>&1 && command -v $(PROMETHEUS_BIN) >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  echo "tools: installing Debian's prometheus package (promtool, prometheus)"; \
	  $(TOOLS_APT) update -qq && \
	  $(TOOLS_APT) install -y -qq --no-install-recommends prometheus >/dev/null && \
	  command -v $(PROMTOOL) >/dev/null && command -v $(PROMETHEUS_BIN) >/dev/null; \
	else \
	  echo "tools: promtool/prometheus are missing and there is no apt-get: install Prometheus (>= 2.42) so that both are on the PATH" >&2; \
	  exit 1; \
	fi

dashboards: install
	$(TOOLS_ROOT)/.venv/bin/python $(TOOLS_ROOT)/deploy/grafana/build_dashboards.py

rules-test: tools
	$(PROMTOOL) check rules $(TOOLS_ROOT)/deploy/prometheus/rules/*.yml
	cd $(TOOLS_ROOT)/deploy/prometheus/tests && $(PROMTOOL) test rules *.test.yml
