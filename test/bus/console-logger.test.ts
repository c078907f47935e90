/** The bundled console logger writes errors out (it printed `"err":{}` before). */
import assert from 'node:assert/strict';
import { describe, it, mock } from 'node:test';
import { createConsoleLogger } from '../../src/core/logger.ts';
import { DecodeError } from '../../src/index.ts';

function capture(run: () => void): Record<string, unknown>[] {
  const lines: string[] = [];
  const write = mock.method(process.stderr, 'write', (chunk: string) => {
    lines.push(chunk);
    return true;
  });
  try {
    run();
  } finally {
    write.mock.restore();
  }
  return lines.map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('console logger', () => {
  it('serialises errors: name, message, code, stack and the cause chain', () => {
    const cause = new TypeError('socket closed');
    const [entry] = capture(() =>
      createConsoleLogger().error({ err: new DecodeError('bad body', { cause }), topic: 't' }, 'failed'),
    );
    const err = entry?.err as Record<string, unknown>;
    assert.equal(err.name, 'DecodeError');
    assert.equal(err.message, 'bad body');
    assert.equal(err.code, 'EVENTBUS_DECODE');
    assert.match(String(err.stack), /DecodeError: bad body/);
    assert.deepEqual((err.cause as Record<string, unknown>).message, 'socket closed');
    assert.equal(entry?.topic, 't');
    assert.equal(entry?.msg, 'failed');
  });

  it('never throws: cycles, bigints and throwing getters are written as far as they can be', () => {
    const cyclic: Record<string, unknown> = { n: 1n };
    cyclic.self = cyclic;
    const hostile = new Error('hostile');
    Object.defineProperty(hostile, 'code', {
      get() {
        throw new Error('getter');
      },
    });
    const entries = capture(() => {
      const logger = createConsoleLogger();
      logger.warn({ cyclic }, 'cyclic');
      logger.warn({ err: hostile }, 'hostile');
    });
    assert.deepEqual(entries[0]?.cyclic, { n: '1', self: '[circular]' });
    assert.equal((entries[1]?.err as Record<string, unknown> | undefined)?.message, 'hostile');
  });
});
