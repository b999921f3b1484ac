#!/usr/bin/env bash
# Soak test: 100 invocations x 10 S3 objects (20,000 records) through the real binary in
# Lambda mode against a receiver failing 5 % of requests, SQS redelivery simulated.
# Needs moto_server (pip install 'moto[server]'). Bounded: gives up after 10 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
timeout 900 cargo test --test soak -- --ignored --nocapture 2>&1 | grep -E "^soak:|test result|panicked|assert"
