/**
 * The package as a user gets it: the repository's files (what a clean clone
 * has: tracked and new files, no dist/) are packed with `npm pack` (which
 * builds through `prepare`), the tarball is installed offline into a scratch
 * app, and the app (a) runs an ESM script against the installed main entry,
 * on the memory transport and on a spawned nats-server, (b) type-checks a
 * strict TypeScript file (README examples included) against the installed
 * types, without the devDependencies' @types, (c) runs the `eventbus` bin.
 *
 * In the fault tier (`npm run test:faults`, also `npm run test:package`): it
 * packs and installs, which takes tens of seconds.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type NatsServerHandle, startNatsServer } from '../harness/nats-server.ts';
import { readmeTypeScriptBlocks } from './readme-blocks.ts';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const node = process.execPath;
/** npm scripts and `#!/usr/bin/env node` bins must find the pinned Node first. */
const env = { ...process.env, PATH: `${dirname(node)}${delimiter}${process.env.PATH ?? ''}` };

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function run(file: string, args: readonly string[], cwd: string): Promise<Run> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd, env, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

function assertOk(result: Run, what: string): void {
  assert.equal(result.code, 0, `${what} failed:\n${result.stdout}\n${result.stderr}`);
}

/** A copy of what a clean clone holds: git's tracked and new (not ignored) files. */
async function cleanClone(into: string): Promise<void> {
  const listed = await run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], repo);
  if (listed.code !== 0) {
    // Not a git checkout (e.g. an exported tree): everything but what a clone never has.
    const never = new Set(['node_modules', 'dist', '.git', '.tmp']);
    await cp(repo, into, {
      recursive: true,
      filter: (source) => !never.has(source.slice(repo.length).split('/')[0] ?? ''),
    });
  }
  for (const path of listed.code === 0 ? listed.stdout.split('\0') : []) {
    if (path === '' || path.startsWith('node_modules')) continue;
    await mkdir(dirname(join(into, path)), { recursive: true });
    // A tracked file deleted in the working tree is not in the clone either.
    await cp(join(repo, path), join(into, path)).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
  }
  // The devDependencies the build needs (typescript), as after `npm ci`.
  await symlink(await realpath(join(repo, 'node_modules')), join(into, 'node_modules'), 'dir');
}

/**
 * A scratch app depending on the tarball, with a package-lock.json holding the
 * tarball and this repository's locked runtime dependencies (the entries not
 * marked dev): what `npm install <tarball>` would resolve, but answerable from
 * the npm cache alone, since `npm ci` stores tarballs, not registry metadata.
 */
async function writeScratchApp(app: string, tarball: string): Promise<void> {
  const manifest = JSON.parse(await readFile(join(repo, 'package.json'), 'utf8')) as Record<string, unknown>;
  const repoLock = JSON.parse(await readFile(join(repo, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, Record<string, unknown>>;
  };
  const packages: Record<string, unknown> = {
    '': { name: 'scratch-app', dependencies: { 'jxt-eventbus': tarball } },
    'node_modules/jxt-eventbus': {
      version: manifest.version,
      resolved: tarball,
      license: manifest.license,
      dependencies: manifest.dependencies,
      peerDependencies: manifest.peerDependencies,
      peerDependenciesMeta: manifest.peerDependenciesMeta,
      bin: manifest.bin,
      engines: manifest.engines,
    },
  };
  for (const [path, entry] of Object.entries(repoLock.packages)) {
    if (path === '' || entry.dev === true || entry.link === true) continue;
    // This repository's lock omits `resolved`; without it npm asks the
    // registry where the tarball is. The cache finds it by integrity.
    const name = path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length);
    const file = `${name.slice(name.indexOf('/') + 1)}-${String(entry.version)}.tgz`;
    packages[path] = { resolved: `https://registry.npmjs.org/${name}/-/${file}`, ...entry };
  }
  const appManifest = {
    name: 'scratch-app',
    private: true,
    type: 'module',
    dependencies: { 'jxt-eventbus': tarball },
  };
  await writeFile(join(app, 'package.json'), JSON.stringify(appManifest, null, 2));
  await writeFile(
    join(app, 'package-lock.json'),
    JSON.stringify({ name: 'scratch-app', lockfileVersion: 3, requires: true, packages }, null, 2),
  );
}

const nodeNext = { module: 'nodenext', moduleResolution: 'nodenext' };

const smokeScript = `
import { createEventBus, isEventBusError } from 'jxt-eventbus';
const [transport, servers] = process.argv.slice(2);
const bus = await createEventBus(
  transport === 'nats'
    ? { transport, clientId: 'package-smoke', nats: { servers: [servers] } }
    : { transport: 'memory', clientId: 'package-smoke' },
);
const topic = 'package-smoke-' + process.pid;
const received = new Promise((resolve) => {
  bus.subscribeEnvelope(topic, async (event) => resolve(event), { group: 'smoke' });
});
await new Promise((resolve) => setImmediate(resolve));
const { eventId } = await bus.publishEnvelope(topic, {
  aggregateId: 'order-1', eventType: 'OrderPlaced', eventVersion: 1, payload: { total: 7 },
});
await bus.flush({ timeoutMs: 10000 });
const event = await received;
await bus.close();
console.log(JSON.stringify({ eventId, received: event.eventId, total: event.payload.total, typed: isEventBusError(new Error()) }));
`;

/** Uses the public API under strict settings; fails to compile if a type is missing or wrong. */
const strictCheck = `
import { createEventBus, type EventBusOptions, type Envelope, InvalidArgumentError } from 'jxt-eventbus';
import { createMemoryBroker } from 'jxt-eventbus';
import { createOrderChecker } from 'jxt-eventbus/testing';
import type { OutboxRelayOptions } from 'jxt-eventbus/outbox';

const options: EventBusOptions = { transport: 'memory', clientId: 'typed', memory: { broker: createMemoryBroker() } };
export async function typed(): Promise<Envelope<{ total: number }> | undefined> {
  const bus = await createEventBus(options);
  let last: Envelope<{ total: number }> | undefined;
  await bus.subscribeEnvelope<{ total: number }>('orders', async (event) => { last = event; });
  await bus.close();
  return last;
}
export const checker = createOrderChecker();
export const error: InvalidArgumentError = new InvalidArgumentError('x');
export type Relay = OutboxRelayOptions;
`;

describe('the packed package, installed into a scratch app', { timeout: 600_000 }, () => {
  let work: string;
  let app: string;
  let packedFiles: readonly string[];
  let nats: NatsServerHandle;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'eventbus-package-'));
    const clone = join(work, 'clone');
    app = join(work, 'app');
    await cleanClone(clone);
    const packed = await run('npm', ['pack', '--json', '--pack-destination', work], clone);
    assertOk(packed, 'npm pack');
    const [info] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as {
      filename: string;
      files: { path: string }[];
    }[];
    assert.ok(info, 'npm pack printed no package');
    packedFiles = info.files.map((f) => f.path);
    await mkdir(app);
    await writeScratchApp(app, `../${info.filename}`);
    // Offline: the dependencies' tarballs are in the npm cache after `npm ci`
    // (the lock written above names them, so no registry metadata is needed).
    const installed = await run('npm', ['ci', '--offline', '--no-audit', '--no-fund'], app);
    assertOk(installed, 'npm install of the tarball');
    nats = await startNatsServer();
  });

  after(async () => {
    await nats?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('holds the built code, the types, the LICENSE and the README', () => {
    for (const file of [
      'LICENSE',
      'README.md',
      'package.json',
      'dist/index.js',
      'dist/index.d.ts',
      'dist/cli/main.js',
    ]) {
      assert.ok(packedFiles.includes(file), `${file} is missing from the tarball`);
    }
    assert.ok(!packedFiles.some((f) => f.startsWith('test/')), 'tests are not shipped');
  });

  it('installs no optional peer dependency and no bench-only package', async () => {
    const lock = JSON.parse(await readFile(join(app, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, unknown>;
    };
    for (const name of [
      '@platformatic/kafka',
      'pg',
      '@electric-sql/pglite',
      'cli-progress',
      'hdr-histogram-js',
    ]) {
      assert.ok(!(`node_modules/${name}` in lock.packages), `${name} was installed`);
    }
  });

  for (const transport of ['memory', 'nats'] as const) {
    it(`runs an ESM script that publishes and consumes one event (${transport})`, async () => {
      await writeFile(join(app, 'smoke.mjs'), smokeScript);
      const result = await run(node, ['smoke.mjs', transport, nats.url], app);
      assertOk(result, 'smoke.mjs');
      const outcome = JSON.parse(result.stdout.trim()) as Record<string, unknown>;
      assert.equal(outcome.received, outcome.eventId);
      assert.equal(outcome.total, 7);
      assert.equal(outcome.typed, false);
    });
  }

  /** Runs this repository's tsc on `files` in the app under strict settings, library checks on. */
  async function typeCheck(files: readonly string[], module: object = nodeNext): Promise<Run> {
    await writeFile(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'es2024',
          strict: true,
          noEmit: true,
          types: ['node'],
          skipLibCheck: false,
          ...module,
        },
        files,
      }),
    );
    return run(node, [join(repo, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], app);
  }

  /** Links one of this repository's installed packages into the app (no download). */
  async function linkPackage(name: string): Promise<void> {
    await mkdir(dirname(join(app, 'node_modules', name)), { recursive: true });
    await symlink(await realpath(join(repo, 'node_modules', name)), join(app, 'node_modules', name), 'dir');
  }

  it('type-checks a strict TypeScript file against the installed types, with @types/node only', async () => {
    // As a user has it: not @types/pg or any other devDependency of ours.
    await linkPackage('@types/node');
    await linkPackage('undici-types');
    await writeFile(join(app, 'check.ts'), strictCheck);
    assertOk(await typeCheck(['check.ts']), 'tsc check.ts');
  });

  it('type-checks in a CommonJS project (NestJS default: module commonjs, node10 resolution)', async () => {
    const source =
      "import { createEventBus, type EventBusOptions } from 'jxt-eventbus';\n" +
      "const options: EventBusOptions = { transport: 'nats', clientId: 'nest', nats: { servers: 'nats://127.0.0.1:4222' } };\n" +
      'export const start = () => createEventBus(options);\n';
    await writeFile(join(app, 'commonjs.cts'), source);
    assertOk(
      await typeCheck(['commonjs.cts'], {
        module: 'commonjs',
        moduleResolution: 'node10',
        // As NestJS's default tsconfig: nats.js's own declarations need node16+ resolution.
        skipLibCheck: true,
      }),
      'tsc commonjs.cts',
    );
  });

  it('type-checks the README examples under strict', async () => {
    // The outbox example uses pg: a user following it has pg and its types.
    for (const name of ['pg', '@types/pg', 'pg-protocol', 'pg-types']) await linkPackage(name);
    const files: string[] = [];
    for (const [index, block] of (await readmeTypeScriptBlocks(repo)).entries()) {
      const file = `readme-${index}.ts`;
      await writeFile(join(app, file), `// from ${block.source}\n${block.code}\nexport {};\n`);
      files.push(file);
    }
    assert.ok(files.length >= 2, 'the README examples were not found');
    assertOk(await typeCheck(files), `tsc ${files.join(', ')}`);
  });

  it('loads from CommonJS through require(esm)', async () => {
    const script = "const { createEventBus } = require('jxt-eventbus'); console.log(typeof createEventBus);";
    const result = await run(node, ['--input-type=commonjs', '-e', script], app);
    assertOk(result, 'require(jxt-eventbus)');
    assert.equal(result.stdout.trim(), 'function');
  });

  it('names the package to install when an optional peer dependency is missing', async () => {
    const script = `
      import { createEventBus } from 'jxt-eventbus';
      try {
        await createEventBus({ transport: 'kafka', clientId: 'no-kafka', kafka: { brokers: ['127.0.0.1:1'] } });
        console.log('created');
      } catch (error) {
        console.log(JSON.stringify({ code: error.code, packageName: error.packageName, message: error.message }));
      }`;
    const result = await run(node, ['--input-type=module', '-e', script], app);
    assertOk(result, 'kafka without @platformatic/kafka');
    const outcome = JSON.parse(result.stdout.trim()) as Record<string, string>;
    assert.equal(outcome.code, 'EVENTBUS_MISSING_DEPENDENCY');
    assert.equal(outcome.packageName, '@platformatic/kafka');
    assert.match(outcome.message ?? '', /npm install @platformatic\/kafka/);
  });

  it('runs the bin: npx eventbus --help', async () => {
    const result = await run('npx', ['--offline', '--no-install', 'eventbus', '--help'], app);
    assertOk(result, 'npx eventbus --help');
    assert.match(result.stdout, /^Usage: eventbus <command>/);
  });

  it('says which package `eventbus demo` needs when PGlite is not installed', async () => {
    const result = await run('npx', ['--offline', '--no-install', 'eventbus', 'demo', '--orders', '1'], app);
    assert.equal(result.code, 1, `${result.stdout}\n${result.stderr}`);
    assert.match(result.stderr, /npm install @electric-sql\/pglite/);
  });
});
