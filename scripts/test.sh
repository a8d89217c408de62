#!/usr/bin/env bash
# The whole test suite, as CI runs it: system dependencies, build, type-check,
# unit tests, then integration tests against real processes.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-test-deps.sh
npm run build
npm run typecheck
npx vitest run --config vitest.unit.config.ts
npx vitest run --config vitest.integration.config.ts
