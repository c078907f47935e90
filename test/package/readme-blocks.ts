/**
 * The README's TypeScript examples, as files a user could paste: each ```ts
 * block of README.md and src/outbox/README.md, with `declare const` lines for
 * the placeholders the prose leaves to the reader (a connection string, an
 * order id), so the package test can type-check them under `strict`.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface ReadmeBlock {
  readonly source: string;
  readonly code: string;
}

const documents = ['README.md', 'src/outbox/README.md'];

/** Placeholders the examples use without defining, with the type a reader would supply. */
const placeholders: Readonly<Record<string, string>> = {
  connectionString: 'string',
  orderId: 'string',
  payload: '{ readonly total: number }',
  servers: 'string[]',
};

export async function readmeTypeScriptBlocks(repo: string): Promise<ReadmeBlock[]> {
  const blocks: ReadmeBlock[] = [];
  for (const document of documents) {
    const text = await readFile(join(repo, document), 'utf8');
    for (const match of text.matchAll(/^```ts\n([\s\S]*?)^```$/gm)) {
      const body = match[1] ?? '';
      const declarations = Object.entries(placeholders)
        .filter(([name]) => new RegExp(`\\b${name}\\b`).test(body))
        .filter(([name]) => !new RegExp(`\\b(const|let|var)\\s+${name}\\b`).test(body))
        .map(([name, type]) => `declare const ${name}: ${type};`);
      blocks.push({ source: document, code: `${body}\n${declarations.join('\n')}\n` });
    }
  }
  return blocks;
}
