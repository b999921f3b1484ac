# flowlog-forwarder developer targets. `make help` lists them. Each target checks for
# the tools it needs and says how to install what is missing.
.PHONY: help run invoke test lint audit bench bench-process cold-start build package deploy

ARCH ?= arm64
EVENT ?= events/s3-put.json

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

run: ## Process the shipped sample flow log to NDJSON on stdout (the README main job); only documents on stdout
	@cargo run --quiet --profile local -- process events/flowlogs/sample.log.gz

invoke: ## Run the handler once on an event: make invoke EVENT=events/sqs-s3.json
	@cargo run --quiet --profile local -- invoke $(EVENT) --s3-dir events/s3

test: ## Every test, as CI runs them (they install moto[server] with pip if needed)
	cargo test --locked

lint: ## cargo fmt --check, clippy -D warnings, cfn-lint template.yaml, cargo deny (bans, sources, licenses)
	cargo fmt --all -- --check
	cargo clippy --all-targets --locked -- -D warnings
	@command -v cfn-lint >/dev/null || { echo "missing cfn-lint: pip install cfn-lint"; exit 1; }
	cfn-lint template.yaml
	@command -v cargo-deny >/dev/null || { echo "missing cargo-deny: cargo install cargo-deny --locked"; exit 1; }
	cargo deny check bans sources licenses

audit: ## RustSec advisories for every dependency (needs network access to the advisory database)
	cargo deny check advisories

bench: ## Criterion benchmarks of parse + normalize + serialize (BENCHMARKS.md)
	cargo bench --bench pipeline

bench-process: ## Whole-process throughput and peak RSS: make bench-process RECORDS=3000000
	benches/process.sh $(or $(RECORDS),1000000)

cold-start: ## Binary size and cold start (spawn to first runtime API 'next' call)
	benches/cold-start.sh

build: ## Lambda package with cargo-lambda: target/lambda/flowlog-forwarder/bootstrap (ARCH=arm64|x86_64)
	@command -v cargo-lambda >/dev/null || { echo "missing cargo-lambda: pip install cargo-lambda (brings zig), or see https://www.cargo-lambda.info"; exit 1; }
	@if [ "$(ARCH)" = arm64 ] && ! rustup target list --installed 2>/dev/null | grep -q aarch64-unknown-linux-gnu; then \
	 echo "missing the arm64 Rust target: rustup target add aarch64-unknown-linux-gnu"; exit 1; fi
	cargo lambda build --release --$(subst _,-,$(ARCH))

package: build ## The deployment zip for other tools (Terraform, CDK, the console): target/lambda/flowlog-forwarder.zip and its SHA-256
	@command -v zip >/dev/null || { echo "missing zip: apt-get install zip"; exit 1; }
	cd target/lambda/flowlog-forwarder && rm -f ../flowlog-forwarder.zip && zip -q -X ../flowlog-forwarder.zip bootstrap
	cd target/lambda && sha256sum flowlog-forwarder.zip | tee flowlog-forwarder.zip.sha256

deploy: ## sam build && sam deploy --guided (AWS credentials needed)
	@command -v sam >/dev/null || { echo "missing the SAM CLI: pip install aws-sam-cli"; exit 1; }
	@command -v cargo-lambda >/dev/null || { echo "missing cargo-lambda: pip install cargo-lambda"; exit 1; }
	sam build --beta-features
	sam deploy --guided
