# arq.monitoring: the two commands a fresh machine needs are `make lab` and `make test`.
SHELL := /bin/bash
VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
SCENARIOS ?= $(sort $(notdir $(patsubst %/molecule.yml,%,$(wildcard molecule/*/molecule.yml))))

.PHONY: help deps harness lab lab-down lint unit molecule test benchmark

help:
	@echo "make lab       bring up the stack on local systemd containers and print where to look"
	@echo "make lab-down  remove the lab containers"
	@echo "make test      lint, unit tests and every Molecule scenario (what CI runs)"
	@echo "make molecule SCENARIOS=node_exporter   one scenario"
	@echo "make benchmark whole-stack converge and re-run figures on the lab, into docs/benchmarks.md"

# Python tools, pinned; reinstalled when requirements.txt changes.
deps: $(VENV)/.installed
$(VENV)/.installed: requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

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

lint: deps
	yamllint --strict .
	python -m pyflakes plugins tests molecule
	ansible-lint --profile production
	pytest -q -p no:cacheprovider tests/lint

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

test: lint unit molecule

# Whole-stack figures on a fresh lab and the filter's, written to docs/benchmarks.md.
benchmark: harness
	python tests/benchmarks/stack.py $$(tests/harness/release_source)
