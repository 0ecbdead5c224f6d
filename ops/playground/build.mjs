// Builds the GraphiQL playground assets into ../../internal/playground/dist.
//
//   npm ci && npm run build
//
// Output (committed, embedded into the Go binary with //go:embed):
//   graphiql.js             one minified IIFE: React 18 (production), GraphiQL, graphql-ws
//   graphiql.css            GraphiQL's stylesheet, minified
//   fonts/<sha256>.woff2    the Roboto and Fira Code faces GraphiQL ships as data: URIs,
//                           moved out into content-addressed files so the browser fetches
//                           only the unicode-range subsets a page actually uses
//   THIRD_PARTY_LICENSES.txt  the licenses of the bundled npm packages
//
// The build is deterministic: the same package-lock.json gives byte-identical files.
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundle, licenses, requireFiles, writeDir } from '../bundle/bundle.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const outDir = path.resolve(here, '../../internal/playground/dist');

const result = await bundle(build, { dir: here, entryPoints: { graphiql: 'src/index.jsx' } });

const files = new Map(); // path relative to dist -> contents
for (const f of result.outputFiles) {
  const name = path.basename(f.path);
  if (name.endsWith('.css')) {
    files.set(name, Buffer.from(extractFonts(f.text, files), 'utf8'));
  } else {
    files.set(name, Buffer.from(f.contents));
  }
}

// extractFonts replaces every url(data:font/...;base64,...) in css with a
// relative url to a file named after the sha256 of its bytes, and adds the
// file to files.
function extractFonts(css, files) {
  const re = /url\((["']?)data:font\/(woff2?);base64,([A-Za-z0-9+/=]+)\1\)/g;
  return css.replace(re, (_m, _q, ext, b64) => {
    const bytes = Buffer.from(b64, 'base64');
    const hash = createHash('sha256').update(bytes).digest('hex').slice(0, 16);
    const name = `fonts/${hash}.${ext}`;
    files.set(name, bytes);
    return `url(${name})`;
  });
}

requireFiles(files, ['graphiql.js', 'graphiql.css']);
files.set('THIRD_PARTY_LICENSES.txt', Buffer.from(await licenses(here, result.metafile, 'Third-party software bundled into graphiql.js and graphiql.css'), 'utf8'));

const names = await writeDir(outDir, files);
let total = 0;
for (const name of names) total += files.get(name).length;
console.log(`wrote ${names.length} files, ${(total / 1024).toFixed(0)} KiB, to ${path.relative(process.cwd(), outDir) || '.'}`);
for (const name of names.filter((n) => !n.startsWith('fonts/'))) {
  console.log(`  ${name}  ${(files.get(name).length / 1024).toFixed(0)} KiB`);
}
const fonts = names.filter((n) => n.startsWith('fonts/'));
const fontBytes = fonts.reduce((s, n) => s + files.get(n).length, 0);
console.log(`  fonts/ (${fonts.length} files)  ${(fontBytes / 1024).toFixed(0)} KiB`);

