# flowlog-forwarder developer targets. `make help` lists them.
.PHONY: help run invoke test lint bench bench-process

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

run: ## Process the shipped sample flow log to NDJSON on stdout
	cargo run --release -- process events/flowlogs/sample.log.gz

invoke: ## Run the handler once on an event: make invoke EVENT=events/sqs-s3.json
	cargo run --release -- invoke $(or $(EVENT),events/s3-put.json) --s3-dir events/s3

test: ## Run every test (what CI runs; needs moto_server: pip install 'moto[server]')
	cargo test --locked

lint: ## Formatting and clippy, warnings as errors
	cargo fmt --all -- --check
	cargo clippy --all-targets --locked -- -D warnings

bench: ## Criterion benchmarks of parse + normalize + serialize
	cargo bench --bench pipeline

bench-process: ## Whole-process throughput and peak RSS: make bench-process RECORDS=3000000
	benches/process.sh $(or $(RECORDS),1000000)
