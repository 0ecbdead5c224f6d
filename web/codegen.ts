// GraphQL Code Generator (typescript-operations, typed-document-node): the types of the web
// app's operations (src/graphql/*.graphql, and what every client shares,
// graph/client/operations/shared.graphql: the message mutations, markRead and their fragments,
// with the app's own MessageFields), checked against the published schema (schema.graphql at
// the repository root), and each operation as a TypedDocumentNode from which Apollo Client's
// hooks infer their result and variables types. The output, src/generated/graphql.ts, is
// committed; web/check.sh fails when it is out of date.
//
//   npm ci && npm run codegen
import type { CodegenConfig } from '@graphql-codegen/cli';

const config: CodegenConfig = {
  schema: '../schema.graphql',
  documents: ['src/graphql/*.graphql', '../graph/client/operations/shared.graphql'],
  generates: {
    'src/generated/graphql.ts': {
      plugins: ['typescript-operations', 'typed-document-node'],
      config: {
        // Apollo Client's recommended starter configuration.
        avoidOptionals: { field: true, inputValue: false },
        nonOptionalTypename: true,
        skipTypeNameForRoot: true,
        enumsAsTypes: true,
        useTypeImports: true,
        strictScalars: true,
        scalars: {
          // ID is a string in responses; the server takes a string or a number in variables.
          ID: { input: 'string | number', output: 'string' },
          // Time is an RFC 3339 string with the offset, e.g. 2026-11-25T20:05:54.123456Z.
          Time: 'string',
        },
      },
    },
  },
};

export default config;
