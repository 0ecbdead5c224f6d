// GraphQL Code Generator: TypeScript types for the published schema (schema.graphql at the
// repository root) and for the operations the Go client uses too (graph/client/operations),
// plus a typed document string per operation for src/client.ts to send with fetch.
//
//   npm ci && npm run codegen && npm run typecheck     (make check-ts does this)
import type { CodegenConfig } from '@graphql-codegen/cli';

const scalars = {
  // ID is a string in responses; the server takes a string or a number in variables.
  ID: { input: 'string | number', output: 'string' },
  // Time is an RFC 3339 string with the offset, e.g. 2026-11-25T20:05:54.123456Z.
  Time: 'string',
};

const config: CodegenConfig = {
  schema: '../../../schema.graphql',
  documents: ['../../../graph/client/operations/*.graphql'],
  generates: {
    // Every type of the schema (typescript).
    'src/generated/schema.ts': {
      plugins: ['typescript'],
      config: { enumsAsTypes: true, strictScalars: true, scalars },
    },
    // The result and variables types of each operation (typescript-operations), which imports
    // the input types from schema.ts, and each operation as a TypedDocumentString: the text
    // to POST, typed with its result and variables (typed-document-node).
    'src/generated/graphql.ts': {
      plugins: ['typescript-operations', 'typed-document-node'],
      config: {
        importSchemaTypesFrom: './src/generated/schema.ts',
        // ES module imports with their .js extension (tsconfig: NodeNext).
        emitLegacyCommonJSImports: false,
        documentMode: 'string',
        useTypeImports: true,
        enumsAsTypes: true,
        strictScalars: true,
        scalars,
      },
    },
  },
};

export default config;
