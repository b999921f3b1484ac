# flowlog-forwarder developer targets. `make help` lists them.
.PHONY: help run test lint bench

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

run: ## Process the shipped sample flow log to NDJSON on stdout
	cargo run --release -- process events/flowlogs/sample.log.gz

test: ## Run every test (what CI runs)
	cargo test --locked

lint: ## Formatting and clippy, warnings as errors
	cargo fmt --all -- --check
	cargo clippy --all-targets --locked -- -D warnings

bench: ## Criterion benchmarks of parse + normalize + serialize
	cargo bench --bench pipeline
