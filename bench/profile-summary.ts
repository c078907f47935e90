/** `node bench/profile-summary.ts FILE.cpuprofile [...]`: top self-time functions, overall and of src/. */
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { type CpuProfile, formatProfile, summarizeProfile } from './profile.ts';

const files = process.argv.slice(2);
if (files.length === 0) {
  process.stderr.write('Usage: node bench/profile-summary.ts FILE.cpuprofile [...]\n');
  process.exitCode = 1;
}
for (const file of files) {
  const profile = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
  process.stdout.write(`${formatProfile(summarizeProfile(profile, basename(file), file, 20))}\n\n`);
}
