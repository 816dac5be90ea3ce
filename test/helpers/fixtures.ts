import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe } from 'vitest';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** `../shared/fixtures` beside the checkout (CI has it), or SKNOCK_FIXTURES. */
export const fixturesRoot = process.env.SKNOCK_FIXTURES ?? path.resolve(repoRoot, '../shared/fixtures');
export const upstreamFixtures = path.join(fixturesRoot, 'sknock-upstream');
export const haveUpstreamFixtures = existsSync(path.join(upstreamFixtures, 'test-pki', 'devclient.pfx'));

export function upstreamFixture(...parts: string[]): string {
  return path.join(upstreamFixtures, ...parts);
}

/**
 * A describe block over the original sKnock fixtures. Outside this
 * environment they may be absent and the block is skipped with a message;
 * in CI (CI=true) a missing folder is a failure, never a silent skip.
 */
export function describeWithUpstreamFixtures(name: string, body: () => void): void {
  if (haveUpstreamFixtures) {
    describe(name, body);
    return;
  }
  if (process.env.CI === 'true') {
    throw new Error(`CI=true but the sKnock fixtures are missing at ${upstreamFixtures} (set SKNOCK_FIXTURES)`);
  }
  console.warn(`skipping "${name}": sKnock fixtures not found at ${upstreamFixtures} (set SKNOCK_FIXTURES)`);
  describe.skip(name, body);
}
