/**
 * The examples as a reader runs them: `npm run build`, then
 * `node examples/<name>.ts`, where `import … from 'jxt-eventbus'` resolves to
 * the package itself by name (Node's package self-reference through
 * `exports`). So that a stale or missing dist/ in the checkout can't decide
 * the outcome, the kit builds into a scratch copy of the package:
 * package.json, a fresh dist/ compiled from src/, examples/, and a link to
 * this checkout's node_modules (pg, @platformatic/kafka, @types/*). It then
 * type-checks the examples against the built declarations with
 * examples/tsconfig.json (strict, nodenext), as an application would.
 */
import { execFile } from 'node:child_process';
import { cp, mkdtemp, realpath, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type LineProcess, startLineProcess } from '../harness/line-process.ts';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const tsc = join(repo, 'node_modules', 'typescript', 'bin', 'tsc');

function run(args: readonly string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [...args], { cwd, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${args.join(' ')} failed:\n${stdout}\n${stderr}`));
      else resolve();
    });
  });
}

export interface ExamplesPackage {
  readonly dir: string;
  /** Starts `node examples/<name>.ts` in the scratch package with `env` added to this process's. */
  start(name: string, env: Readonly<Record<string, string>>, onLine?: (line: string) => void): LineProcess;
  remove(): Promise<void>;
}

export async function buildExamplesPackage(): Promise<ExamplesPackage> {
  const dir = await mkdtemp(join(tmpdir(), 'eventbus-examples-'));
  try {
    await cp(join(repo, 'package.json'), join(dir, 'package.json'));
    await cp(join(repo, 'examples'), join(dir, 'examples'), { recursive: true });
    await symlink(await realpath(join(repo, 'node_modules')), join(dir, 'node_modules'), 'dir');
    await run([tsc, '-p', join(repo, 'tsconfig.build.json'), '--outDir', join(dir, 'dist')], repo);
    await run([tsc, '-p', join(dir, 'examples', 'tsconfig.json')], dir);
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    dir,
    start: (name, env, onLine) =>
      startLineProcess([join(dir, 'examples', `${name}.ts`)], {
        cwd: dir,
        env: { ...process.env, ...env },
        ...(onLine === undefined ? {} : { onLine }),
      }),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}
