#!/usr/bin/env bash
# Regenerates the sqlc and gqlgen code and fails if that changed any file: generated code is
# committed and must match its inputs (db/query, migrations, graph/*.graphqls, the configs); the
# trusted-document manifest must match what the generated clients send.
set -euo pipefail
cd "$(dirname "$0")/.."
paths=(db/dbsqlc graph/generated.go graph/shapes_gen.go graph/model/models_gen.go graph/schema.resolvers.go schema.graphql graph/client/generated.go graph/document/trusted.json)
before=$(git status --porcelain -- "${paths[@]}"; git diff -- "${paths[@]}" | sha256sum)
go tool sqlc generate
go run ./ops/gqlgen
go run ./ops/schema
go tool genqlient graph/client/genqlient.yaml
go run ./ops/trusted
after=$(git status --porcelain -- "${paths[@]}"; git diff -- "${paths[@]}" | sha256sum)
if [[ "$before" != "$after" ]]; then
  echo "check-generated: regenerating changed the generated code; run 'make generate' and commit:" >&2
  git status --short -- "${paths[@]}" >&2
  git --no-pager diff --stat -- "${paths[@]}" >&2
  exit 1
fi
echo "check-generated: sqlc, gqlgen, schema.graphql, genqlient output and the trusted-document manifest are up to date"
