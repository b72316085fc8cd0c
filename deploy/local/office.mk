# LibreOffice for the letters' PDF previews (tthc_adapters.pdf) and the tests that read them
# (tests/component/test_apology_service.py, tests/e2e/test_apology_inbox_browser.py). Included by the root
# Makefile; `make test` depends on `office`.
#
#   make office      installs Debian's libreoffice-writer-nogui and poppler-utils (pdftotext), only what is missing
#
# As `make browser`: nothing happens when every package is installed (a dpkg query, no network); on a
# machine without apt-get the target only says what is missing, and the PDF tests skip, or fail when CI is set.
# About a minute and some 300 MB the first time.
#
# Make variables: OFFICE_APT_PACKAGES (libreoffice-writer-nogui poppler-utils fonts-liberation2).

OFFICE_APT_PACKAGES ?= libreoffice-writer-nogui poppler-utils fonts-liberation2

.PHONY: office

office:
	@missing=""; \
	for p in $(OFFICE_APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
	  if command -v soffice >/dev/null 2>&1 && command -v pdftotext >/dev/null 2>&1; then exit 0; fi; \
	  echo "office: no apt-get here; install LibreOffice Writer and pdftotext (missing:$$missing)" >&2; \
	  exit 0; \
	fi; \
	sudo=""; if [ "$$(id -u)" != 0 ]; then sudo="sudo"; fi; \
	echo "office: installing$$missing"; \
	$$sudo apt-get update -qq && \
	DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing >/dev/null
