/**
 * The IO edge: libpcap through the `cap` native addon, one handle per
 * interface. Frames leave here as views of cap's buffer; decoding is frames.ts.
 *
 * Facts about cap 0.2.1 this module works around (measured, see the tests):
 * - it fills ONE Buffer for every packet: the callback gets a view of it,
 *   valid until it returns (junk is read in place, never copied; what is kept
 *   is copied by the keeper, see ownedDatagram);
 * - a failed open() leaves a half-built handle whose destructor crashes the
 *   process when it is garbage-collected, so failed handles are kept alive;
 * - it switches on immediate mode only when dlopen("libpcap.so") works (the
 *   libpcap-dev symlink); without it packets wait up to its 1 s read timeout;
 * - it aborts the process when a captured interface goes down or disappears
 *   (an assertion in its poll callback): capture on `any` where links come
 *   and go;
 * - once open, reading needs no privilege: the socket and ring are kept, so
 *   the process may drop root right after openCapture (it never re-opens).
 */
import { createRequire } from 'node:module';
import { constants as osConstants } from 'node:os';
import { SknockError } from '../../client-lib/errors.js';
import { LinkType } from './frames.js';
import { openPacketSockets, RingCounter, type RingStatistics } from './packet-statistics.js';

export type CaptureErrorCode = 'SKNOCK_CAPTURE_OPEN' | 'SKNOCK_CAPTURE_CALLBACK';

export interface CaptureOptions {
  /** Interface names as `ip link` shows them, or ['any'] for all of them. */
  readonly interfaces: readonly string[];
  /** A BPF expression (see filter.ts). */
  readonly filter: string;
  /** libpcap's kernel ring size in bytes; DEFAULT_CAPTURE_BUFFER_SIZE when omitted. */
  readonly bufferSize?: number;
  /** Called synchronously per frame with a view of it that cap reuses for the next one: copy what outlives the call. */
  readonly onPacket: (linkType: number, frame: Buffer, interfaceName: string) => void;
  /** Receives what onPacket threw; capture goes on. */
  readonly onError: (error: SknockError<'SKNOCK_CAPTURE_CALLBACK'>) => void;
}

export interface Capture {
  /** Interface name → libpcap link type (see LinkType in frames.ts). */
  readonly linkTypes: ReadonlyMap<string, number>;
  /** False when cap could not enable immediate mode: knocks may then wait up to 1 s. */
  readonly immediateMode: boolean;
  /**
   * Packets the kernel rings took and dropped (ring full) since open, over
   * all handles; undefined when they cannot be counted (native/ not built)
   * and after close().
   */
  ringStatistics(): RingStatistics | undefined;
  /** Stops every handle; safe to call twice. */
  close(): void;
}

export const DEFAULT_CAPTURE_BUFFER_SIZE = 8 * 1024 * 1024;
/** cap's snapshot length: every frame fits whole. */
const FRAME_BUFFER_SIZE = 65535;
const ANY_INTERFACE = 'any';

/** The part of cap's API used here (it ships no types). */
interface CapHandle {
  open(device: string, filter: string, bufferSize: number, buffer: Buffer): string;
  close(): void;
  on(event: 'packet', listener: (byteCount: number, truncated: boolean) => void): void;
}

interface CapModule {
  Cap: (new () => CapHandle) & { deviceList(): Array<{ name: string }> };
}

/** Handles whose open() failed: collecting them would crash the process (see above). */
const failedHandles: CapHandle[] = [];

let capModule: CapModule | undefined;

function loadCap(): CapModule {
  if (capModule !== undefined) return capModule;
  try {
    capModule = createRequire(import.meta.url)('cap') as CapModule;
    return capModule;
  } catch (error) {
    throw new SknockError('SKNOCK_CAPTURE_OPEN', 'cannot load the cap native addon: install libpcap-dev and run `npm rebuild cap`', { cause: error });
  }
}

/** cap's name for the link type → its DLT number. */
export function linkTypeFromCapName(name: string): number | undefined {
  switch (name) {
    case 'ETHERNET':
      return LinkType.ETHERNET;
    case 'LINKTYPE_LINUX_SLL':
      return LinkType.LINUX_SLL;
    case 'NULL':
      return LinkType.NULL;
    case 'RAW':
      return LinkType.RAW;
    default: {
      // Types cap has no name for (e.g. LINUX_SLL2, 276) arrive as "Unknown linktype 276".
      const unnamed = /^Unknown linktype (\d+)$/.exec(name);
      return unnamed?.[1] === undefined ? undefined : Number(unnamed[1]);
    }
  }
}

/**
 * Mirrors cap's own test: it enables immediate mode only when the dynamic
 * loader finds "libpcap.so". A library that loads but is no Node addon throws
 * "did not self-register"; a missing one throws "cannot open shared object".
 */
export function capCanUseImmediateMode(): boolean {
  if (process.platform !== 'linux') return true;
  try {
    process.dlopen({ exports: {} }, 'libpcap.so', osConstants.dlopen.RTLD_LAZY);
    return true;
  } catch (error) {
    return error instanceof Error && error.message.includes('did not self-register');
  }
}

export function openCapture(options: CaptureOptions): Capture {
  checkInterfaceList(options.interfaces);
  const cap = loadCap();
  const known = new Set(cap.Cap.deviceList().map((device) => device.name));
  const bufferSize = options.bufferSize ?? DEFAULT_CAPTURE_BUFFER_SIZE;
  const handles: CapHandle[] = [];
  const linkTypes = new Map<string, number>();
  const ringSockets: number[] = [];
  const closeAll = (): void => {
    for (const handle of handles.splice(0)) handle.close();
  };
  try {
    for (const interfaceName of options.interfaces) {
      if (!known.has(interfaceName)) {
        throw new SknockError('SKNOCK_CAPTURE_OPEN', `capture interface "${interfaceName}" does not exist here (see \`ip link\`; "any" captures on all)`);
      }
      // libpcap's socket for this handle: the packet socket that was not open before.
      const before = openPacketSockets();
      const { handle, linkType } = openOne(cap, interfaceName, options, bufferSize);
      ringSockets.push(...[...openPacketSockets()].filter((descriptor) => !before.has(descriptor)));
      handles.push(handle);
      linkTypes.set(interfaceName, linkType);
    }
  } catch (error) {
    closeAll();
    throw error;
  }
  const ringCounter = new RingCounter(ringSockets);
  return { linkTypes, immediateMode: capCanUseImmediateMode(), close: closeAll, ringStatistics: () => (handles.length > 0 ? ringCounter.read() : undefined) };
}

function checkInterfaceList(interfaces: readonly string[]): void {
  if (interfaces.length === 0) throw new SknockError('SKNOCK_CAPTURE_OPEN', 'no capture interface given (use "any" for all)');
  if (new Set(interfaces).size !== interfaces.length) {
    throw new SknockError('SKNOCK_CAPTURE_OPEN', `capture interfaces ${interfaces.join(',')} name one twice: each frame would arrive twice`);
  }
  if (interfaces.length > 1 && interfaces.includes(ANY_INTERFACE)) {
    throw new SknockError('SKNOCK_CAPTURE_OPEN', `capture interfaces ${interfaces.join(',')}: "any" already covers every interface, so frames would arrive twice`);
  }
}

function openOne(cap: CapModule, interfaceName: string, options: CaptureOptions, bufferSize: number): { handle: CapHandle; linkType: number } {
  const handle = new cap.Cap();
  const shared = Buffer.alloc(FRAME_BUFFER_SIZE);
  let capLinkType: string;
  try {
    capLinkType = handle.open(interfaceName, options.filter, bufferSize, shared);
  } catch (error) {
    failedHandles.push(handle);
    throw new SknockError('SKNOCK_CAPTURE_OPEN', `cannot capture on "${interfaceName}": ${describeOpenFailure(error, options.filter)}`, { cause: error });
  }
  const linkType = linkTypeFromCapName(capLinkType);
  if (linkType === undefined) {
    handle.close();
    throw new SknockError('SKNOCK_CAPTURE_OPEN', `cannot capture on "${interfaceName}": unexpected link type "${capLinkType}"`);
  }
  handle.on('packet', (byteCount) => {
    // cap overwrites `shared` with the next packet: the callee copies what it keeps.
    const frame = shared.subarray(0, byteCount);
    try {
      options.onPacket(linkType, frame, interfaceName);
    } catch (error) {
      options.onError(new SknockError('SKNOCK_CAPTURE_CALLBACK', `the packet handler threw on "${interfaceName}"`, { cause: error }));
    }
  });
  return { handle, linkType };
}

function describeOpenFailure(error: unknown, filter: string): string {
  const message = error instanceof Error ? error.message : String(error);
  if (/not permitted|permission/i.test(message)) return `${message} (run as root or grant CAP_NET_RAW; drop privileges after opening)`;
  if (/no such device|doesn't exist/i.test(message)) return `${message} (see \`ip link\`)`;
  if (/syntax|filter|parse/i.test(message)) return `${message} (filter: ${filter})`;
  return message;
}
