/**
 * A freshly initialised PGlite database, loaded from a copy instead of running
 * initdb again. initdb in WASM costs 4–7 s of CPU per test process (measured
 * on the CI machine: `PGlite.create()` 4.4 s idle, 7 s with a second test
 * file running; loading a dumped data dir 1.2–1.3 s), and about ten test
 * processes open a PGlite, so the first one to need it dumps an initdb'd,
 * empty data dir into node_modules/.cache and every later process loads it.
 *
 * The copy holds nothing but initdb's output: callers migrate it themselves,
 * as they would a new database, so a schema change can never be hidden by a
 * stale cache. The file is keyed by PGlite's version and written under a
 * temporary name then renamed, so concurrent test processes either read a
 * whole file or build their own.
 */
import { readFileSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PGlite } from '@electric-sql/pglite';

const repo = fileURLToPath(new URL('../../', import.meta.url));
// The package does not export its package.json: read it from node_modules.
const pgliteManifest = join(repo, 'node_modules', '@electric-sql', 'pglite', 'package.json');
const { version } = JSON.parse(readFileSync(pgliteManifest, 'utf8')) as { version: string };
const cacheFile = join(repo, 'node_modules', '.cache', 'jxt-eventbus', `pglite-${version}-initdb.tar`);

let template: Promise<Blob> | undefined;

async function loadOrBuild(): Promise<Blob> {
  try {
    return new Blob([await readFile(cacheFile)]);
  } catch {
    // Not built yet (or unreadable): build it below.
  }
  const db = await PGlite.create();
  const dump = await db.dumpDataDir('none');
  await db.close();
  const partial = `${cacheFile}.${process.pid}.partial`;
  try {
    await mkdir(dirname(cacheFile), { recursive: true });
    await writeFile(partial, new Uint8Array(await dump.arrayBuffer()));
    await rename(partial, cacheFile);
  } catch {
    // A read-only node_modules costs the next process an initdb, nothing else.
    await rm(partial, { force: true });
  }
  return dump;
}

/** A new, empty PGlite database (initdb'd, not migrated). */
export async function freshPglite(): Promise<PGlite> {
  template ??= loadOrBuild();
  return PGlite.create({ loadDataDir: await template });
}
