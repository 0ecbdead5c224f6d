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
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const outDir = path.resolve(here, '../internal/webapp/dist');

const result = await build({
  absWorkingDir: here,
  entryPoints: { app: 'src/main.tsx' },
  outdir: 'out', // nothing is written there: write is false
  write: false,
  bundle: true,
  minify: true,
  format: 'iife',
  platform: 'browser',
  target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
  jsx: 'automatic',
  define: { 'process.env.NODE_ENV': '"production"', __DEV__: 'false' },
  legalComments: 'eof',
  sourcemap: false,
  charset: 'ascii',
  logLevel: 'warning',
  metafile: true,
});

const files = new Map(); // name -> contents
for (const f of result.outputFiles) files.set(path.basename(f.path), Buffer.from(f.contents));
for (const name of ['app.js', 'app.css']) {
  if (!files.has(name)) throw new Error(`esbuild did not produce ${name}`);
}

// The license of every npm package that has code in the bundle, sorted by name, so that the
// notices travel with the copies of the code that we ship.
const pkgs = new Map(); // name -> directory
for (const input of Object.keys(result.metafile.inputs)) {
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
files.set('THIRD_PARTY_LICENSES.txt', Buffer.from(`Third-party software bundled into app.js\n\n${parts.join('\n')}`, 'utf8'));

await rm(outDir, { recursive: true, force: true });
await mkdir(outDir, { recursive: true });
for (const [name, body] of [...files].sort()) {
  await writeFile(path.join(outDir, name), body);
  console.log(`  ${name}  ${(body.length / 1024).toFixed(0)} KiB`);
}
