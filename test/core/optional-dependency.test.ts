/** Optional peer dependencies: a missing one is named; other import failures surface as they are. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MissingDependencyError } from '../../src/core/errors.ts';
import { importOptional, isMissingPackage } from '../../src/core/optional-dependency.ts';

describe('importOptional', () => {
  it('returns the module when it is installed', async () => {
    const fs = await importOptional<typeof import('node:fs')>('node:fs', 'a test');
    assert.equal(typeof fs.readFileSync, 'function');
  });

  it('names the missing package and what needs it', async () => {
    await assert.rejects(
      importOptional('jxt-eventbus-not-installed-package', 'the test feature'),
      (error: unknown) => {
        assert.ok(error instanceof MissingDependencyError);
        assert.equal(error.code, 'EVENTBUS_MISSING_DEPENDENCY');
        assert.equal(error.packageName, 'jxt-eventbus-not-installed-package');
        assert.match(error.message, /for the test feature/);
        assert.match(error.message, /npm install jxt-eventbus-not-installed-package/);
        return true;
      },
    );
  });

  it('does not mistake a dependency of the package failing to load for the package missing', () => {
    const nested = Object.assign(
      new Error("Cannot find package 'inner-dep' imported from /x/outer/index.js"),
      {
        code: 'ERR_MODULE_NOT_FOUND',
      },
    );
    assert.equal(isMissingPackage(nested, 'outer'), false);
    assert.equal(isMissingPackage(nested, 'inner-dep'), true);
    assert.equal(isMissingPackage(new Error("'outer'"), 'outer'), false);
  });
});
