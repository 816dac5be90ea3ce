import type { Grant } from './verify/pipeline.js';

/**
 * Hands grants to the firewall with no added delay when it is idle, and in
 * one batch per round trip when it is busy: under load the batches grow, so
 * the cost per grant falls instead of a queue of single updates forming.
 */
export class GrantBatcher {
  private pending: Grant[] = [];
  private inFlight: Promise<void> | undefined;

  constructor(
    private readonly apply: (grants: readonly Grant[]) => Promise<void>,
    private readonly onError: (error: unknown, grants: readonly Grant[]) => void,
  ) {}

  add(grants: readonly Grant[]): void {
    this.pending.push(...grants);
    if (!this.inFlight) this.inFlight = this.drain();
  }

  /** Resolves when everything added so far has been applied (or failed). */
  async settled(): Promise<void> {
    while (this.inFlight) await this.inFlight;
  }

  private async drain(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending;
      this.pending = [];
      try {
        await this.apply(batch);
      } catch (error) {
        this.onError(error, batch);
      }
    }
    this.inFlight = undefined;
  }
}
