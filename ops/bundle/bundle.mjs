// What the builds of the browser bundles the Go binary embeds share (web/build.mjs, the web app;
// ops/playground/build.mjs, GraphiQL): esbuild's options, the third-party license notices, and
// writing the output directory. Each build imports esbuild from its own node_modules and
// passes it in, so this module needs no npm package of its own.
//
// Every step is deterministic: the same package-lock.json and sources give byte-identical files
// (web/check.sh rebuilds and fails on any difference).
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

// bundle builds entryPoints (name -> source file, relative to dir) into one minified IIFE each,
// for the browsers the apps support, with process.env.NODE_ENV "production" and define's other
// constants. Nothing is written: the result's outputFiles hold the files, and its metafile the
// inputs (for licenses).
export function bundle(build, { dir, entryPoints, define = {} }) {
  return build({
    absWorkingDir: dir,
    entryPoints,
    outdir: 'out', // nothing is written there: write is false
    write: false,
    bundle: true,
    minify: true,
    format: 'iife',
    platform: 'browser',
    target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
    jsx: 'automatic',
    define: { 'process.env.NODE_ENV': '"production"', ...define },
    legalComments: 'eof',
    sourcemap: false,
    charset: 'ascii',
    logLevel: 'warning',
    metafile: true,
  });
}

// licenses returns the license texts of every npm package that has code in the bundle (the
// metafile's inputs under node_modules, relative to dir), sorted by package name, under the
// heading title, so that the notices travel with the copies of the code that we ship.
export async function licenses(dir, metafile, title) {
  const pkgs = new Map(); // name -> directory
  for (const input of Object.keys(metafile.inputs)) {
    const m = input.match(/^(.*node_modules\/((?:@[^/]+\/)?[^/]+))\//);
    if (m) pkgs.set(m[2], m[1]);
  }
  const parts = [];
  for (const name of [...pkgs.keys()].sort()) {
    const pkgDir = path.join(dir, pkgs.get(name));
    const pkg = JSON.parse(await readFile(path.join(pkgDir, 'package.json'), 'utf8'));
    const licenseFile = (await readdir(pkgDir)).sort().find((f) => /^(licen[cs]e|copying)(\.|$)/i.test(f));
    const text = licenseFile ? (await readFile(path.join(pkgDir, licenseFile), 'utf8')).trim() : `License: ${pkg.license}`;
    parts.push(`${name}@${pkg.version}\n${'-'.repeat(name.length + pkg.version.length + 1)}\n${text}\n`);
  }
  return `${title}\n\n${parts.join('\n')}`;
}

// requireFiles throws unless files (name -> contents) holds every one of names.
export function requireFiles(files, names) {
  for (const name of names) {
    if (!files.has(name)) throw new Error(`esbuild did not produce ${name}`);
  }
}

// writeDir replaces outDir with files (path relative to outDir -> contents) and returns their
// paths, sorted.
export async function writeDir(outDir, files) {
  await rm(outDir, { recursive: true, force: true });
  const names = [...files.keys()].sort();
  for (const name of names) {
    await mkdir(path.dirname(path.join(outDir, name)), { recursive: true });
    await writeFile(path.join(outDir, name), files.get(name));
  }
  return names;
}
