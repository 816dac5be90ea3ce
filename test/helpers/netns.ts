import { spawnSync } from 'node:child_process';
import { describe } from 'vitest';

export { TestNetwork, run, type CommandResult } from '../../scripts/netns.js';

/** True when this process can create network namespaces (root with iproute2). */
export const canUseNamespaces: boolean = (() => {
  if (process.getuid?.() !== 0) return false;
  const probe = `sk-probe-${process.pid}`;
  const added = spawnSync('ip', ['netns', 'add', probe]).status === 0;
  if (added) spawnSync('ip', ['netns', 'del', probe]);
  return added;
})();

/**
 * A describe block that needs root and network namespaces. Outside CI it is
 * skipped with a message when they are unavailable; in CI (CI=true) that is
 * a failure: these tests must run there.
 */
export function describeWithNamespaces(name: string, body: () => void): void {
  if (canUseNamespaces) {
    describe(name, body);
    return;
  }
  if (process.env.CI === 'true') {
    throw new Error(`CI=true but network namespaces are unavailable (need root and iproute2): "${name}" must run`);
  }
  console.warn(`skipping "${name}": needs root and network namespaces`);
  describe.skip(name, body);
}

