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

.PHONY: help engine venv test demo drill preview up refresh destroy stack lab-up lab-down check-config ovh-credentials

help:
	@echo "make demo [LAB=vm]        the main job: bring the lab up, then pulumi up of the whole cluster on it"
	@echo "                          (LAB=vm: two Debian VMs with real DRBD and IPsec ESP, stack vmlab)"
	@echo "make test                 the whole test suite (real engine, real lab)"
	@echo "make engine               build or find the Pulumi engine into .engine/bin"
	@echo "make lab-up | lab-down    the local two-host lab (network namespaces)"
	@echo "make vmlab-up | vmlab-down   the VM lab (two Debian 12 VMs under qemu)"
	@echo "make drill [STACK=lab]    crash the node holding the failover IP, time the failover (REAL=1: a real cluster)"
	@echo "make preview|up|refresh|destroy [STACK=lab] [YES=1] [REFRESH=1: read the servers first]"
	@echo "make check-config STACK=prod   validate a stack file without the engine or any server"
	@echo "make ovh-credentials STACK=prod   ask OVH for the operator's and the node agent's consumer keys"

engine:
	@engine/bootstrap

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-test.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-test.txt
	@touch $@

test: engine venv
	$(RUN) $(PY) -m pytest -rs tests

# The netns hosts, then the OVH API emulator seeded from Pulumi.lab.yaml (127.0.0.1:18080).
lab-up: engine venv
	$(PYTHON) lab/lab.py up
	$(PY) -m lab.ovh_emulator up
	$(PY) -m lab.mail_sink up

lab-down:
	@rc=0; $(PYTHON) -m vmlab status >/dev/null 2>&1 || rc=$$?; if [ $$rc = 3 ]; then \
	  $(PYTHON) -m lab.ovh_emulator down || true; $(PYTHON) -m lab.mail_sink down || true; fi
	$(PYTHON) lab/lab.py down

# Two least-privilege consumer keys (operator, node agent) for STACK's failover IP and SMS service; needs
# OVH_APPLICATION_KEY and OVH_APPLICATION_SECRET in the environment. See README, "OVH credentials".
ovh-credentials: stack
	@set -e; ip=$$($(PULUMI) config get --path failoverIp.address --stack $(STACK)); \
	 sms=$$($(PULUMI) config get --path alerts.sms.service --stack $(STACK) 2>/dev/null || true); \
	 ep=$$($(PULUMI) config get ovh:endpoint --stack $(STACK)); \
	 dir=$$(mktemp -d); trap 'rm -rf "$$dir"' EXIT; \
	 for role in operator node; do echo "== $$role key"; \
	   $(PY) -m components.ovh --endpoint "$$ep" request-credential --role $$role --ip "$$ip" \
	     $${sms:+--sms-service "$$sms"} --key-file "$$dir/$$role"; \
	   if [ $$role = operator ]; then key=ovh:consumerKey; else key=ovh-ha-cluster:agentConsumerKey; fi; \
	   $(PULUMI) config set --secret "$$key" --stack $(STACK) < "$$dir/$$role"; \
	   echo "stored as $$key (secret) in stack $(STACK); it works once validated at the URL above"; done

stack: engine venv
	@$(PULUMI) stack select --create --non-interactive $(STACK) >/dev/null

# The main job: the two lab hosts (root: network namespaces), then the whole cluster deployed on them.
# LAB=vm: the production shape (DRBD, ESP) in the two Debian VMs instead (stack vmlab).
LAB ?= netns
demo:
ifeq ($(LAB),vm)
	@# from down, `vmlab up` makes fresh disks: the stack's state describes servers that are gone, so it goes
	@# (local stack, config kept); one VM restarted on its own disks keeps its state
	@rc=0; $(PYTHON) -m vmlab status >/dev/null 2>&1 || rc=$$?; $(MAKE) -s vmlab-up && \
	 if [ $$rc = 3 ]; then $(RUN) pulumi stack rm vmlab --yes --force --preserve-config >/dev/null 2>&1 || true; fi
	@$(MAKE) -s stack STACK=vmlab
	$(MAKE) -s up STACK=vmlab YES=1 REFRESH=1
else ifeq ($(LAB),netns)
	@$(MAKE) -s lab-up
	@$(MAKE) -s stack STACK=lab
	$(MAKE) -s up STACK=lab YES=1 REFRESH=1
else
	@echo "LAB=$(LAB): expected netns (the default) or vm" >&2; exit 2
endif

# The failover drill (README, "Failover drill"). On a real stack it needs REAL=1 and asks for confirmation.
drill: venv
	$(PY) -m drill --stack $(STACK) $(if $(REAL),--real) $(DRILL_ARGS)

# refresh runs the program too, so the stack outputs (DRBD role/connection/disk, Heartbeat, routing per node)
# show what it read from the servers, not what the last `up` saw.
preview up refresh destroy: stack
	$(PULUMI) $@ --stack $(STACK) $(if $(filter up refresh destroy,$@),$(if $(YES),--yes)) \
	  $(if $(filter up preview,$@),$(if $(REFRESH),--refresh)) $(if $(filter refresh,$@),--run-program)

check-config: venv
	$(PY) -m components.check_config Pulumi.$(STACK).yaml

# The VM lab (vmlab/README.md): two Debian 12 VMs under qemu with DRBD 8.4 and ESP; root builds the base once.
# The VMs reach the same OVH API emulator and mail sink as the netns lab; they stay up while either lab is.
.PHONY: vmlab-up vmlab-down
vmlab-up: engine venv
	$(PYTHON) -m vmlab up
	$(PY) -m lab.ovh_emulator up
	$(PY) -m lab.mail_sink up

vmlab-down:
	$(PYTHON) -m vmlab down
	@rc=0; $(PYTHON) lab/lab.py status >/dev/null 2>&1 || rc=$$?; if [ $$rc = 3 ]; then \
	  $(PYTHON) -m lab.ovh_emulator down; $(PYTHON) -m lab.mail_sink down; fi
