#!/usr/bin/env node
/** Entry point of `npm run bench` (`node bench/run.ts [options]`); see bench/README.md. */
import { benchScript } from './cli.ts';

await benchScript(process.argv.slice(2));
