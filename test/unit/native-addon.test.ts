/** Finding and loading an optional native addon: built, missing, or broken. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadNativeAddon } from '../../client-lib/native-addon.js';

describe('loadNativeAddon', () => {
  it('says not-built when no candidate exists, and takes the first candidate that does', () => {
    const folder = mkdtempSync(path.join(tmpdir(), 'sknock-addon-'));
    try {
      const moduleUrl = pathToFileURL(path.join(folder, 'caller.js')).href;
      expect(loadNativeAddon(moduleUrl, ['./missing.node', './also-missing.node'])).toEqual({ loaded: false, problem: 'not-built' });
      writeFileSync(path.join(folder, 'broken.node'), 'not a shared object');
      const broken = loadNativeAddon(moduleUrl, ['./missing.node', './broken.node']);
      expect(broken).toMatchObject({ loaded: false, problem: 'load-failed' });
      expect(broken.loaded === false && broken.detail).toMatch(/broken\.node/);
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  });

  it('loads a built addon (the capture ring counter, which npm ci builds)', () => {
    const load = loadNativeAddon<{ listPacketSockets(): number[] }>(import.meta.url, ['../../native/build/Release/sknock_packet_stats.node']);
    expect(load.loaded).toBe(true);
    expect(load.loaded && typeof load.addon.listPacketSockets).toBe('function');
  });
});
