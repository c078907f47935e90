/** The Node.js version check every entry point runs first. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UnsupportedRuntimeError } from '../../src/core/errors.ts';
import { assertSupportedRuntime, minimumNodeMajor } from '../../src/core/runtime.ts';

describe('assertSupportedRuntime', () => {
  it('accepts the running Node and newer majors', () => {
    assertSupportedRuntime();
    assertSupportedRuntime(`${minimumNodeMajor}.0.0`);
    assertSupportedRuntime(`${minimumNodeMajor + 1}.2.3`);
  });

  for (const version of ['20.20.2', '22.12.0', `${minimumNodeMajor - 1}.9.9`, 'garbage']) {
    it(`rejects ${version} with a typed error naming the version needed`, () => {
      assert.throws(
        () => assertSupportedRuntime(version),
        (error: unknown) =>
          error instanceof UnsupportedRuntimeError &&
          error.code === 'EVENTBUS_UNSUPPORTED_RUNTIME' &&
          error.message.includes(`Node.js ${minimumNodeMajor} or newer`) &&
          error.message.includes(version),
      );
    });
  }
});
