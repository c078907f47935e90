#!/usr/bin/env node
/** Entry point of `npm run bench` (`node bench/run.ts [options]`); see bench/README.md. */
import { benchMain } from './cli.ts';

benchMain(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  },
);
