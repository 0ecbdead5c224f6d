// Builds the web app into ../internal/webapp/dist, which the Go binary embeds (//go:embed dist).
//
//   npm ci && npm run build
//
// Output (committed):
//   app.js                   one minified IIFE: src/main.tsx, React 18 (production build),
//                            Apollo Client, graphql-ws, graphql-js; no source map
//   app.css                  src/app.css, minified
//   THIRD_PARTY_LICENSES.txt the licenses of the npm packages with code in app.js
//
// The build is deterministic: the same package-lock.json and sources give byte-identical files
// (web/check.sh rebuilds and fails on any difference).
import { build } from 'esbuild';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundle, licenses, requireFiles, writeDir } from '../ops/bundle/bundle.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const outDir = path.resolve(here, '../internal/webapp/dist');

const result = await bundle(build, { dir: here, entryPoints: { app: 'src/main.tsx' }, define: { __DEV__: 'false' } });

const files = new Map(); // name -> contents
for (const f of result.outputFiles) files.set(path.basename(f.path), Buffer.from(f.contents));
requireFiles(files, ['app.js', 'app.css']);
files.set('THIRD_PARTY_LICENSES.txt', Buffer.from(await licenses(here, result.metafile, 'Third-party software bundled into app.js'), 'utf8'));

for (const name of await writeDir(outDir, files)) {
  console.log(`  ${name}  ${(files.get(name).length / 1024).toFixed(0)} KiB`);
}
