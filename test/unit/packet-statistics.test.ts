/**
 * The capture ring's drop counter outside a capture: what it does with no
 * socket, and with a descriptor that is no packet socket (it must stop
 * counting, never throw into the daemon's stats timer). The counting itself
 * is tested against a real ring in test/integration/capture-netns.test.ts.
 */
import { closeSync, openSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { openPacketSockets, RingCounter } from '../../server/capture/packet-statistics.js';

describe('RingCounter', () => {
  it('counts nothing without sockets', () => {
    expect(new RingCounter([]).read()).toBeUndefined();
  });

  it('stops counting, without throwing, when a descriptor is no packet socket', () => {
    const descriptor = openSync(import.meta.filename ?? new URL(import.meta.url).pathname, 'r');
    try {
      expect(openPacketSockets().has(descriptor)).toBe(false);
      const counter = new RingCounter([descriptor]);
      expect(() => counter.read()).not.toThrow();
      expect(counter.read()).toBeUndefined();
    } finally {
      closeSync(descriptor);
    }
  });
});
