#!/usr/bin/env bash
# make check-ts: installs the pinned npm packages (npm ci), regenerates the TypeScript types from
# schema.graphql and graph/client/operations/*.graphql, fails if that changed the committed
# src/generated/, and type-checks everything with tsc --noEmit --strict.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v npm >/dev/null 2>&1; then
  echo "check-ts: npm not found; run make client-deps (or install Node.js 20 or later)" >&2
  exit 1
fi
npm ci --no-audit --no-fund --loglevel=error
before=$(git status --porcelain -- src/generated; git diff -- src/generated | sha256sum)
npm run --silent codegen -- --silent
after=$(git status --porcelain -- src/generated; git diff -- src/generated | sha256sum)
if [[ "$before" != "$after" ]]; then
  echo "check-ts: regenerating changed ops/clients/ts/src/generated; run 'npm run codegen' there and commit:" >&2
  git status --short -- src/generated >&2
  exit 1
fi
npm run --silent typecheck
echo "check-ts: TypeScript codegen is up to date and tsc --strict passes"
