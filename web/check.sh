#!/usr/bin/env bash
# make check-web: installs the pinned npm packages (npm ci), regenerates the operation types
# from schema.graphql and src/graphql/*.graphql, type-checks the app (tsc --strict), rebuilds
# the bundle into internal/webapp/dist, and fails if the generated types or the bundle changed:
# both are committed, and the binary embeds the bundle.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v npm >/dev/null 2>&1; then
  echo "check-web: npm not found; run make client-deps (or install Node.js 20 or later)" >&2
  exit 1
fi
outputs=(src/generated ../internal/webapp/dist)
state() { git status --porcelain -- "${outputs[@]}"; git diff -- "${outputs[@]}" | sha256sum; }
npm ci --no-audit --no-fund --loglevel=error
before=$(state)
npm run --silent codegen -- --silent
npm run --silent typecheck
npm run --silent build >/dev/null
after=$(state)
if [[ "$before" != "$after" ]]; then
  echo "check-web: regenerating changed web/src/generated or internal/webapp/dist; run 'npm run codegen && npm run build' in web/ and commit:" >&2
  git status --short -- "${outputs[@]}" >&2
  exit 1
fi
echo "check-web: the web app's types and bundle are up to date and tsc --strict passes"
