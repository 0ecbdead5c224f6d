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
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const outDir = path.resolve(here, '../../internal/playground/dist');

const result = await build({
  absWorkingDir: here,
  entryPoints: { graphiql: 'src/index.jsx' },
  outdir: 'out', // nothing is written there: write is false
  write: false,
  bundle: true,
  minify: true,
  format: 'iife',
  platform: 'browser',
  target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
  jsx: 'automatic',
  define: { 'process.env.NODE_ENV': '"production"' },
  legalComments: 'eof',
  sourcemap: false,
  charset: 'ascii',
  logLevel: 'warning',
  metafile: true,
});

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

files.set('THIRD_PARTY_LICENSES.txt', Buffer.from(await licenses(result.metafile), 'utf8'));

// licenses returns the license texts of every npm package that has code in
// the bundle, sorted by package name, so that the notices travel with the
// copies of the code that we ship.
async function licenses(metafile) {
  const pkgs = new Map(); // name -> directory
  for (const input of Object.keys(metafile.inputs)) {
    const m = input.match(/^(.*node_modules\/((?:@[^/]+\/)?[^/]+))\//);
    if (m) pkgs.set(m[2], m[1]);
  }
  const parts = [];
  for (const name of [...pkgs.keys()].sort()) {
    const dir = path.join(here, pkgs.get(name));
    const pkg = JSON.parse(await readFile(path.join(dir, 'package.json'), 'utf8'));
    const licenseFile = (await readdir(dir)).sort().find((f) => /^(licen[cs]e|copying)(\.|$)/i.test(f));
    const text = licenseFile ? (await readFile(path.join(dir, licenseFile), 'utf8')).trim() : `License: ${pkg.license}`;
    parts.push(`${name}@${pkg.version}\n${'-'.repeat(name.length + pkg.version.length + 1)}\n${text}\n`);
  }
  return `Third-party software bundled into graphiql.js and graphiql.css\n\n${parts.join('\n')}`;
}

const expected = ['graphiql.js', 'graphiql.css'];
for (const name of expected) {
  if (!files.has(name)) throw new Error(`esbuild did not produce ${name}`);
}

await rm(outDir, { recursive: true, force: true });
await mkdir(path.join(outDir, 'fonts'), { recursive: true });
const names = [...files.keys()].sort();
for (const name of names) {
  await writeFile(path.join(outDir, name), files.get(name));
}

let total = 0;
for (const name of names) total += files.get(name).length;
console.log(`wrote ${names.length} files, ${(total / 1024).toFixed(0)} KiB, to ${path.relative(process.cwd(), outDir) || '.'}`);
for (const name of names.filter((n) => !n.startsWith('fonts/'))) {
  console.log(`  ${name}  ${(files.get(name).length / 1024).toFixed(0)} KiB`);
}
const fonts = names.filter((n) => n.startsWith('fonts/'));
const fontBytes = fonts.reduce((s, n) => s + files.get(n).length, 0);
console.log(`  fonts/ (${fonts.length} files)  ${(fontBytes / 1024).toFixed(0)} KiB`);

