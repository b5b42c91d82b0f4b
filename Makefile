# arq.monitoring: the two commands a fresh machine needs are `make lab` and `make test`.
SHELL := /bin/bash
VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
SCENARIOS ?= $(sort $(notdir $(patsubst %/molecule.yml,%,$(wildcard molecule/*/molecule.yml))))
# Galaxy's importer, antsibull-docs and antsibull-changelog, in a venv of their own (they pin
# attrs and ansible-lint differently from requirements.txt): tests/publish/requirements.txt.
PUBLISH := $(VENV)/publish
# ansible-test bootstraps pip into each sanity test's venv with ~/.ansible/test/cache/get_pip_<v>.py,
# fetched from ci-files.testing.ansible.com, which is out of reach: tests/publish/get_pip.py stands
# in for it with pip's wheel from PyPI. The version is ansible-test's (get_venv_packages in
# ansible_test/_internal/python_requirements.py; 24.2 for ansible-core 2.19).
ANSIBLE_TEST_PIP := 24.2
GET_PIP := $(HOME)/.ansible/test/cache/get_pip_$(subst .,_,$(ANSIBLE_TEST_PIP)).py

.PHONY: help deps harness lab lab-down lint unit checks molecule test benchmark

help:
	@echo "make lab       bring up the stack on local systemd containers and print where to look"
	@echo "make lab-down  remove the lab containers"
	@echo "make test      lint, unit tests and every Molecule scenario (what CI runs)"
	@echo "make molecule SCENARIOS=node_exporter   one scenario"
	@echo "make benchmark whole-stack converge and re-run figures on the lab, into docs/benchmarks.md"

# Python tools, pinned; reinstalled when requirements.txt (or tests/publish/requirements.txt) changes.
deps: $(VENV)/.installed $(PUBLISH)/.installed $(GET_PIP)
$(VENV)/.installed: requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements.txt
	touch $@
$(PUBLISH)/.installed: tests/publish/requirements.txt $(VENV)/.installed
	python3 -m venv $(PUBLISH)
	$(PUBLISH)/bin/pip install -q --disable-pip-version-check -r tests/publish/requirements.txt
	touch $@
$(GET_PIP): tests/publish/get_pip.py $(VENV)/.installed
	$(VENV)/bin/pip download -q --disable-pip-version-check --no-deps -d $(@D) pip==$(ANSIBLE_TEST_PIP)
	cp tests/publish/get_pip.py $@

# Docker engine, Debian 12/13 systemd images, offline release mirror (all cached).
harness: deps
	tests/harness/setup

# Releases: the real upstream ones when GitHub and dl.grafana.com answer, else (saying so) the
# offline mirror; ARQ_LAB_SOURCE=upstream|mirror forces one (tests/harness/release_source).
lab: harness
	@source=$$(tests/harness/release_source) && set -x && \
	ansible-playbook tests/harness/lab.yml -i inventories/lab && \
	ansible-playbook site.yml -i inventories/lab $$source
	@echo
	@echo "The lab is up: containers lab-monitoring, lab-db, lab-cache, lab-app (docker ps)."
	@echo "  Grafana:                         http://127.0.0.1:3002 (admin; password in inventories/lab/group_vars/grafana.yml)"
	@echo "  Prometheus:                      http://127.0.0.1:9090 (targets: /api/v1/targets)"
	@echo "  Node exporter on lab-monitoring: http://127.0.0.1:9100/metrics"
	@echo "  Alertmanager on lab-monitoring:  http://127.0.0.1:9093"
	@echo "  On any lab host:                 docker exec lab-db curl -s localhost:9100/metrics"
	@echo "make lab again converges with no changes; make lab-down removes the lab."

lab-down: deps
	ansible-playbook tests/harness/lab.yml -i inventories/lab -e lab_state=absent

# Then the ecosystem's own checkers (tests/publish/lint.py): Galaxy's importer on the built
# tarball, ansible-test sanity (all its tests but pslint and shellcheck, which have no PowerShell
# or .sh file to check), antsibull-docs on the plugins' and roles' docs, antsibull-changelog.
lint: deps
	yamllint --strict .
	python -m pyflakes plugins tests molecule
	ansible-lint --profile production
	pytest -q -p no:cacheprovider tests/lint
	python tests/publish/lint.py importer sanity docs changelog

# Unit and packaging tests (the Galaxy tarball, installed and documented). They feed generated configs to the real promtool/amtool from the release mirror;
# with PROMTOOL/AMTOOL set, a missing tool fails those tests instead of skipping them (tests/unit/conftest.py).
unit: deps
	tests/harness/setup mirror
	PROMTOOL=$${ARQ_CACHE:-$$HOME/.cache/arq-monitoring}/bin/promtool \
	AMTOOL=$${ARQ_CACHE:-$$HOME/.cache/arq-monitoring}/bin/amtool \
	pytest -q -p no:cacheprovider tests/unit tests/packaging

# Two scenarios at a time (MOLECULE_JOBS), each one's output in .cache/molecule-logs/.
molecule: harness
	tests/harness/molecule_all $(SCENARIOS)

# The scenarios spend most of their time waiting on services (health checks, alerts firing, a
# minute of refused writes), so the lint and unit tests run beside them rather than before.
test: deps harness
	$(MAKE) -j2 checks molecule
checks:
	$(MAKE) lint
	$(MAKE) unit

# Whole-stack figures on a fresh lab of each size of BENCH_HOSTS (inventories/lab's 4 hosts, plus
# plain node_exporter hosts) and the filter's, written to docs/benchmarks.md; removes the lab after.
BENCH_HOSTS ?= 4,12,24
benchmark: harness
	python tests/benchmarks/stack.py --hosts $(BENCH_HOSTS) $$(tests/harness/release_source)
