# The one front door. Every target works from a fresh clone: it builds or finds the engine, creates the
# virtualenv, and runs Pulumi through engine/run (.engine/bin on PATH, file backend in .pulumi-state/).
SHELL := /bin/bash
.DEFAULT_GOAL := help
STACK ?= lab
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUN := engine/run
# Local stacks (the labs) use the throwaway passphrase kept in lab/passphrase; real stacks never do.
LOCAL_STACKS := lab vmlab
STACK_ENV = $(if $(filter $(STACK),$(LOCAL_STACKS)),PULUMI_CONFIG_PASSPHRASE_FILE=$(CURDIR)/lab/passphrase)
PULUMI = $(STACK_ENV) $(RUN) pulumi

.PHONY: help engine venv test demo preview up refresh destroy stack lab-up lab-down check-config

help:
	@echo "make demo                 the main job: pulumi preview of the whole cluster on the lab stack"
	@echo "make test                 the whole test suite (real engine, real lab)"
	@echo "make engine               build or find the Pulumi engine into .engine/bin"
	@echo "make lab-up | lab-down    the local two-host lab (network namespaces)"
	@echo "make preview|up|refresh|destroy [STACK=lab]"
	@echo "make check-config STACK=prod   validate a stack file without the engine or any server"

engine:
	@engine/bootstrap

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-test.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-test.txt
	@touch $@

test: engine venv
	$(RUN) $(PY) -m pytest -rs tests

lab-up: venv
	$(PY) lab/lab.py up

lab-down:
	$(PYTHON) lab/lab.py down

stack: engine venv
	@$(PULUMI) stack select --create --non-interactive $(STACK) >/dev/null

# The main job. Until the lab hosts and the remote layer land, it previews the lab stack end to end.
demo: stack
	$(PULUMI) preview --non-interactive --stack lab

preview up refresh destroy: stack
	$(PULUMI) $@ --stack $(STACK) $(if $(filter up refresh destroy,$@),$(if $(YES),--yes))

check-config: venv
	$(PY) -m components.check_config Pulumi.$(STACK).yaml
