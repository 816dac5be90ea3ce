import { describe, expect, it } from 'vitest';
import { isSknockError } from '../../client-lib/errors.js';
import { LinkType } from '../../server/capture/frames.js';
import { linkTypeFromCapName, openCapture, type CaptureOptions } from '../../server/capture/pcap-capture.js';

const noCallbacks: Pick<CaptureOptions, 'filter' | 'onPacket' | 'onError'> = {
  filter: 'udp',
  onPacket: () => undefined,
  onError: () => undefined,
};

function openError(interfaces: readonly string[]): unknown {
  try {
    openCapture({ ...noCallbacks, interfaces }).close();
  } catch (error) {
    return error;
  }
  return undefined;
}

describe('linkTypeFromCapName', () => {
  it.each([
    ['ETHERNET', LinkType.ETHERNET],
    ['LINKTYPE_LINUX_SLL', LinkType.LINUX_SLL],
    ['NULL', LinkType.NULL],
    ['RAW', LinkType.RAW],
    ['Unknown linktype 276', LinkType.LINUX_SLL2],
    ['Unknown linktype 108', LinkType.LOOP],
  ])('%s → %d', (name, linkType) => {
    expect(linkTypeFromCapName(name)).toBe(linkType);
  });

  it('has no number for a name it does not know', () => {
    expect(linkTypeFromCapName('IEEE802_11_RADIO')).toBeUndefined();
    expect(linkTypeFromCapName('Unknown linktype ')).toBeUndefined();
  });
});

// These fail before any capture handle exists, so they need no privilege.
describe('openCapture refuses what cannot work', () => {
  it('names a missing interface', () => {
    const error = openError(['sk-missing0']);
    expect(isSknockError(error, 'SKNOCK_CAPTURE_OPEN')).toBe(true);
    expect((error as Error).message).toContain('"sk-missing0" does not exist');
  });

  it.each([
    [[], 'no capture interface'],
    [['lo', 'lo'], 'name one twice'],
    [['any', 'lo'], '"any" already covers every interface'],
  ])('refuses the interface list %j', (interfaces, message) => {
    const error = openError(interfaces);
    expect(isSknockError(error, 'SKNOCK_CAPTURE_OPEN')).toBe(true);
    expect((error as Error).message).toContain(message);
  });
});
