# Everything a newcomer needs: `make demo` runs the system on sample data, `make test` tests it.
SHELL := /bin/bash
LOCAL := deploy/local
PY := .local/venv/bin/python

.PHONY: venv system up down reset status logs demo docs test test-unit test-tools test-integration test-security test-faults test-kubernetes bench bench-intake bench-processing bench-metrics bench-notifications bench-signature bench-e2e bench-reads bench-scaling bench-cpu profile

venv:
	@$(LOCAL)/install-python.sh

# What the stack and the tests run on, installed once and cached under .local/.
system:
	@$(LOCAL)/install-apt.sh prometheus prometheus-alertmanager kannel kannel-extras softhsm2 chromium chromium-driver
	@$(LOCAL)/install-kafka.sh
	@$(LOCAL)/install-ferretdb.sh
	@$(LOCAL)/install-kubernetes-tools.sh
	@$(LOCAL)/install-js.sh

up:
	@$(LOCAL)/up.sh

down:
	@$(LOCAL)/down.sh

status:
	@$(LOCAL)/status.sh

# Stop the local stack and delete its data (Kafka topics, FerretDB, Prometheus); keeps installs.
reset:
	@$(LOCAL)/down.sh
	rm -rf .local/data

logs:
	@$(LOCAL)/logs.sh

demo: up
	@$(PY) -m bench.demo

# Unit tests, integration tests, the security findings, then faults injected into the whole pipeline;
# the integration, security and fault tests run on a separate stack that each test session starts and stops.
test: test-unit test-tools test-integration test-security test-faults

# The pure logic: needs nothing but the Python packages (no helm, no promtool).
test-unit: venv
	$(PY) -m pytest tests/unit -m "not tools"

# The deployment's files checked by their own tools: the Helm chart rendered and validated offline
# (helm, kubeconform), the Prometheus rules and Alertmanager's routes (promtool, amtool).
test-tools: venv system
	$(PY) -m pytest tests/unit -m tools

test-kubernetes: venv system
	$(PY) -m pytest tests/unit/test_kubernetes.py

test-integration: venv system
	$(PY) -m pytest tests/integration

# Each finding of the security review (docs/security.md) reproduced: it failed before its fix.
test-security: venv system
	$(PY) -m pytest tests/security

test-faults: venv system
	$(PY) -m pytest tests/faults

# Each bench on the `make up` stack, with its own secrets; `BENCH_SIZE=tiny BENCH_OUTPUT=<file>` runs one in
# seconds and writes there, not to docs/benchmarks.md (make test does: tests/integration/test_benchmarks.py).
bench: bench-intake bench-processing bench-metrics bench-notifications bench-signature bench-e2e bench-reads bench-scaling bench-cpu

bench-intake: up
	$(PY) -m bench.intake

bench-processing: up
	$(PY) -m bench.processing

bench-metrics: up
	$(PY) -m bench.metrics

bench-notifications: up
	$(PY) -m bench.notifications

bench-signature: venv
	$(PY) -m bench.signature

# CPU per event in processing's and metrics' cores, this commit beside a baseline commit (no stack needed).
bench-cpu: venv
	$(PY) -m bench.cpu

bench-e2e: up
	$(PY) -m bench.end_to_end

# Flame graphs of intake, processing and metrics at 2,000 events/s (docs/profiles/), top frames in docs/benchmarks.md.
profile: up
	$(PY) -m bench.profile

# Lookups with a province-year stored (500,000 dossiers, kept in the database bench_reads).
bench-reads: up
	$(PY) -m bench.reads

# What the code documents of itself: the AsyncAPI document of each consuming service (the topics it
# reads and writes, with their payloads) and a JSON Schema per contract; tests check they are current.
docs: venv
	@for s in processing metrics notifications signature; do \
	  .local/venv/bin/faststream docs gen --factory services.$$s.app:asyncapi -o docs/asyncapi/$$s.json; done
	$(PY) -m shared.contracts

# The metrics service by province and with a horizon: a province over five years, and the country's
# shards (values-country.yaml) beside one replica of every province (docs/scaling.md).
bench-scaling: up
	$(PY) -m bench.scaling
