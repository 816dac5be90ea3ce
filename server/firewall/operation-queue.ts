import { grantKey } from './validation.js';
import type { Grant } from './types.js';

/** Keeps one grant per (address, protocol, port); a later request wins, so its seconds apply. */
export function mergeGrants(grants: readonly Grant[]): Grant[] {
  const byKey = new Map<string, Grant>();
  for (const grant of grants) {
    byKey.delete(grantKey(grant));
    byKey.set(grantKey(grant), grant);
  }
  return [...byKey.values()];
}

/**
 * Runs a backend's operations one at a time, in order. Grants that arrive
 * while another operation runs wait in one pending batch, so a burst of
 * knocks becomes one firewall transaction instead of one per knock.
 */
export class OperationQueue {
  private tail: Promise<unknown> = Promise.resolve();
  private pendingBatch: Grant[] | null = null;
  private pendingDone: Promise<void> = Promise.resolve();

  constructor(private readonly applyGrants: (grants: readonly Grant[]) => Promise<void>) {}

  run<T>(operation: () => Promise<T>): Promise<T> {
    const result = this.tail.then(operation);
    this.tail = result.catch(() => undefined);
    return result;
  }

  grant(grants: readonly Grant[]): Promise<void> {
    if (this.pendingBatch !== null) {
      this.pendingBatch.push(...grants);
      return this.pendingDone;
    }
    const batch = [...grants];
    this.pendingBatch = batch;
    this.pendingDone = this.run(() => {
      this.pendingBatch = null;
      return this.applyGrants(mergeGrants(batch));
    });
    return this.pendingDone;
  }
}
