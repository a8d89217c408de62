#!/usr/bin/env bash
# The whole test suite, as CI runs it: system dependencies, build, type-check,
# unit tests, integration tests against real processes, then the
# fault-injection suite (docs/reliability.md).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-test-deps.sh
npm run build
npm run build:agent
npm run typecheck
npx vitest run --config vitest.unit.config.ts
npx vitest run --config vitest.integration.config.ts
npx vitest run --config vitest.fault.config.ts
