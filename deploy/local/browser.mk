# Headless Chromium for the browser tests (tests/e2e/test_apology_inbox_browser.py). Included by the
# root Makefile; `make test` depends on `browser`.
#
#   make browser     installs Debian's chromium and fonts with Vietnamese glyphs, only what is missing
#
# Playwright (dev dependency) drives this system Chromium through executable_path: `playwright install`
# downloads its own browser build, which cannot be fetched here, and is never run. Nothing happens when
# every package is already installed (a dpkg query, no network). On a machine without apt-get the
# target only says what is missing; the test then skips, or fails when CI is set.
#
# Make variables: BROWSER_APT_PACKAGES (chromium fonts-liberation2 fonts-dejavu-core).

BROWSER_APT_PACKAGES ?= chromium fonts-liberation2 fonts-dejavu-core

.PHONY: browser

browser:
	@missing=""; \
	for p in $(BROWSER_APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
	  if command -v chromium >/dev/null 2>&1; then exit 0; fi; \
	  echo "browser: no apt-get here; install Chromium and a Vietnamese font (missing:$$missing)" >&2; \
	  exit 0; \
	fi; \
	sudo=""; if [ "$$(id -u)" != 0 ]; then sudo="sudo"; fi; \
	echo "browser: installing$$missing"; \
	$$sudo apt-get update -qq && \
	DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing >/dev/null
