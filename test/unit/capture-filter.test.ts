import { describe, expect, it } from 'vitest';
import { isSknockError } from '../../client-lib/errors.js';
import { buildCaptureFilter } from '../../server/capture/filter.js';

describe('buildCaptureFilter', () => {
  it('writes the original sKnock defaults (ports 10000-60000, 800-byte frames) against the IP length fields', () => {
    expect(buildCaptureFilter({ knockPorts: { from: 10000, to: 60000 }, minFrameLength: 800 })).toBe(
      'udp and dst portrange 10000-60000 and (' +
        '(ip and ip[6:2] & 0x3fff = 0 and ip[2:2] >= 786) or ' + // 800 - 14 Ethernet
        '(ip6 and ip6[4:2] >= 746))', // 800 - 14 - 40 fixed IPv6 header
    );
  });

  it('uses `dst port` for a single knock port', () => {
    expect(buildCaptureFilter({ knockPorts: { from: 62201, to: 62201 }, minFrameLength: 800 })).toContain('and dst port 62201 and');
  });

  it('clamps thresholds below the header sizes to zero', () => {
    const filter = buildCaptureFilter({ knockPorts: { from: 1, to: 65535 }, minFrameLength: 30 });
    expect(filter).toContain('ip[2:2] >= 16)');
    expect(filter).toContain('ip6[4:2] >= 0)');
  });

  it.each([
    [{ from: 0, to: 10 }, 800],
    [{ from: 10, to: 65536 }, 800],
    [{ from: 20, to: 10 }, 800],
    [{ from: 1.5, to: 10 }, 800],
    [{ from: Number.NaN, to: 10 }, 800],
    [{ from: 1, to: 10 }, -1],
    [{ from: 1, to: 10 }, 65550],
    [{ from: 1, to: 10 }, 800.5],
  ])('refuses ports %j with minimum length %d', (knockPorts, minFrameLength) => {
    let thrown: unknown;
    try {
      buildCaptureFilter({ knockPorts, minFrameLength });
    } catch (error) {
      thrown = error;
    }
    expect(isSknockError(thrown, 'SKNOCK_CAPTURE_FILTER')).toBe(true);
  });
});
