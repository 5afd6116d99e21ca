#!/usr/bin/env node
// Build the JavaScript test components with ComponentizeJS (StarlingMonkey).
//
//   node guests/js/build.mjs [--out DIR] [--force]
//
// Builds src/fetch.js (world fetch-command) and src/handler.js (world
// handler) into DIR/fetch.wasm and DIR/handler.wasm (default build/js/),
// with each component's WIT world beside it (DIR/NAME.wit, what it imports
// and exports). The two builds run in parallel child processes, because
// ComponentizeJS runs Wizer synchronously and so holds one core each.
//
// Caching: DIR/build-key holds a hash of everything that decides the output
// (package-lock.json, this script, the sources, the WIT, Node's major
// version). When it matches and both components exist, nothing runs: no
// npm, no build. Otherwise `npm ci` installs the locked packages, unless
// node_modules already holds that same lock, and both components are built.
//
// The WIT: guests.wit names the worlds; their WASI packages are not copied
// into this repository but taken from the pinned @bytecodealliance/jco,
// which ships WASI 0.2.12. StarlingMonkey's fetch event, though, exports
// wasi:http/incoming-handler@0.2.10 (the version it was built against), and
// a world must name the export at exactly that version; so wasi:http is
// also provided as 0.2.10, made from jco's 0.2.12 package with only its
// version changed. Its types must match the engine's, or componentize
// fails validating the component: the build checks that itself.
//
// package.json pins @bytecodealliance/preview2-shim itself because
// componentize-js 0.23.0 imports it without declaring it (only as a dev
// dependency), so `npm ci` would not install it otherwise.

import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  cpSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync,
} from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..', '..');
const NODE_MODULES = join(HERE, 'node_modules');
const LOCK = join(HERE, 'package-lock.json');
// Written by this script after a successful `npm ci`: the lock it installed.
const INSTALLED_LOCK = join(NODE_MODULES, '.installed-lock-sha256');
const JCO_WASI = join(NODE_MODULES, '@bytecodealliance', 'jco', 'lib', 'wit', 'builtin', '0.2.12');
const ENGINE_HTTP_VERSION = '0.2.10';

const COMPONENTS = {
  fetch: { source: 'src/fetch.js', world: 'fetch-command' },
  handler: { source: 'src/handler.js', world: 'handler' },
};

function sha256(data) {
  return createHash('sha256').update(data).digest('hex');
}

function filesUnder(dir) {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath ?? entry.path, entry.name))
    .sort();
}

function buildKey() {
  const hash = createHash('sha256');
  hash.update(`node ${process.versions.node.split('.')[0]}\n`);
  const inputs = [LOCK, fileURLToPath(import.meta.url), ...filesUnder(join(HERE, 'src')),
    ...filesUnder(join(HERE, 'wit'))];
  for (const file of inputs) {
    hash.update(`${relative(HERE, file)}\n`);
    hash.update(readFileSync(file));
  }
  return hash.digest('hex');
}

function seconds(start) {
  return ((performance.now() - start) / 1000).toFixed(1);
}

function installPackages() {
  const lockHash = sha256(readFileSync(LOCK));
  if (existsSync(INSTALLED_LOCK) && readFileSync(INSTALLED_LOCK, 'utf8') === lockHash) {
    console.log('js-guests: npm packages already installed');
    return;
  }
  const start = performance.now();
  const npm = spawnSync('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'],
    { cwd: HERE, stdio: 'inherit' });
  if (npm.error) throw new Error(`cannot run npm: ${npm.error.message}`);
  if (npm.status !== 0) throw new Error(`npm ci failed (exit status ${npm.status})`);
  writeFileSync(INSTALLED_LOCK, lockHash);
  console.log(`js-guests: npm ci (${seconds(start)} s)`);
}

// The WIT tree componentize reads: guests.wit plus deps/ from jco's WASI
// packages, and wasi:http once more at the engine's version.
function assembleWit(dir) {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'deps'), { recursive: true });
  cpSync(join(HERE, 'wit'), dir, { recursive: true });
  for (const name of readdirSync(JCO_WASI)) {
    cpSync(join(JCO_WASI, name), join(dir, 'deps', name), { recursive: true });
  }
  const http = readFileSync(join(JCO_WASI, 'wasi-http', 'package.wit'), 'utf8');
  const retargeted = http.replace(/^package wasi:http@0\.2\.12;/m,
    `package wasi:http@${ENGINE_HTTP_VERSION};`);
  if (retargeted === http) throw new Error('jco\'s wasi:http WIT has no `package wasi:http@0.2.12;` line');
  mkdirSync(join(dir, 'deps', `wasi-http-${ENGINE_HTTP_VERSION}`));
  writeFileSync(join(dir, 'deps', `wasi-http-${ENGINE_HTTP_VERSION}`, 'package.wit'), retargeted);
}

// One component, in this process: componentize, then record its WIT world.
async function buildOne(name, witDir, outDir) {
  const { componentize } = await import('@bytecodealliance/componentize-js');
  const { componentWit } = await import('@bytecodealliance/jco');
  const { source, world } = COMPONENTS[name];
  const start = performance.now();
  const { component } = await componentize({
    sourcePath: join(HERE, source), witPath: witDir, worldName: world,
  });
  // Write then rename, so an interrupted build never leaves a partial .wasm.
  const out = join(outDir, `${name}.wasm`);
  writeFileSync(`${out}.partial`, component);
  renameSync(`${out}.partial`, out);
  writeFileSync(join(outDir, `${name}.wit`), await componentWit(component));
  console.log(`js-guests: built ${relative(ROOT, out)} (${world}, `
    + `${(component.length / 1e6).toFixed(1)} MB, ${seconds(start)} s)`);
}

function buildInChild(name, witDir, outDir) {
  return new Promise((resolveBuild, rejectBuild) => {
    const child = spawn(process.execPath,
      [fileURLToPath(import.meta.url), '--one', name, '--wit', witDir, '--out', outDir],
      { cwd: HERE, stdio: 'inherit' });
    child.on('error', rejectBuild);
    child.on('exit', (status, signal) => {
      if (status === 0) resolveBuild();
      else rejectBuild(new Error(`building ${name} failed (${signal ?? `exit status ${status}`})`));
    });
  });
}

function parseArguments(argv) {
  const options = { out: join(ROOT, 'build', 'js'), force: false, one: null, wit: null };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--force') options.force = true;
    else if (arg === '--out' || arg === '--one' || arg === '--wit') {
      if (i + 1 >= argv.length) throw new Error(`${arg} needs a value`);
      options[arg.slice(2)] = argv[++i];
    } else throw new Error(`unknown argument ${arg}\nusage: build.mjs [--out DIR] [--force]`);
  }
  options.out = resolve(options.out);
  return options;
}

async function main() {
  const options = parseArguments(process.argv.slice(2));
  if (options.one) {
    await buildOne(options.one, options.wit, options.out);
    return;
  }
  const keyFile = join(options.out, 'build-key');
  const key = buildKey();
  const outputs = Object.keys(COMPONENTS).map((name) => join(options.out, `${name}.wasm`));
  if (!options.force && existsSync(keyFile) && readFileSync(keyFile, 'utf8') === key
      && outputs.every(existsSync)) {
    console.log(`js-guests: up to date (${relative(ROOT, options.out)})`);
    return;
  }
  installPackages();
  mkdirSync(options.out, { recursive: true });
  rmSync(keyFile, { force: true });
  const witDir = join(options.out, 'wit');
  assembleWit(witDir);
  const start = performance.now();
  await Promise.all(Object.keys(COMPONENTS).map((name) => buildInChild(name, witDir, options.out)));
  writeFileSync(keyFile, key);
  console.log(`js-guests: both built in ${seconds(start)} s`);
}

main().catch((error) => {
  console.error(`js-guests: ${error.message}`);
  process.exit(1);
});
