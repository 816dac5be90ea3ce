/**
 * Diagnostic: capture knock-sized UDP with the server's filter and decoder and
 * print one JSON line per frame, to see what the daemon would see.
 *
 *   node dist/server/capture/capture-probe.js [--interface any]... [--ports 10000-60000]
 *        [--min-length 800] [--user nobody --group nogroup] [--seconds N]
 *
 * Lines: {"event":"ready",…}, {"event":"datagram",…} / {"event":"rejected",…},
 * {"event":"closed",…}; on an open error {"event":"error",…} and exit code 2.
 */
import { createHash } from 'node:crypto';
import { parseArgs } from 'node:util';
import { isSknockError } from '../../client-lib/errors.js';
import { buildCaptureFilter, type KnockPortRange } from './filter.js';
import { decodeFrame } from './frames.js';
import { openCapture } from './pcap-capture.js';

const { values } = parseArgs({
  options: {
    interface: { type: 'string', multiple: true, default: ['any'] },
    ports: { type: 'string', default: '10000-60000' },
    'min-length': { type: 'string', default: '800' },
    user: { type: 'string' },
    group: { type: 'string' },
    seconds: { type: 'string' },
  },
});

function print(line: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

function parsePortRange(text: string): KnockPortRange {
  const [from = '', to = from] = text.split('-');
  return { from: Number(from), to: Number(to) };
}

let datagrams = 0;
let rejected = 0;

try {
  const filter = buildCaptureFilter({ knockPorts: parsePortRange(values.ports), minFrameLength: Number(values['min-length']) });
  const capture = openCapture({
    interfaces: values.interface,
    filter,
    onPacket(linkType, frame, interfaceName) {
      const decoded = decodeFrame(linkType, frame);
      if (!decoded.ok) {
        rejected += 1;
        print({ event: 'rejected', interface: interfaceName, linkType, reason: decoded.reason, detail: decoded.detail });
        return;
      }
      datagrams += 1;
      const { payload, ...header } = decoded.value;
      const payloadSha256 = createHash('sha256').update(payload).digest('hex');
      print({ event: 'datagram', interface: interfaceName, linkType, ...header, payloadLength: payload.length, payloadSha256 });
    },
    onError(error) {
      print({ event: 'handler-error', code: error.code, message: error.message });
    },
  });
  if (values.user !== undefined) {
    // Order matters: groups and gid can only be changed while still root.
    process.setgroups?.([]);
    process.setgid?.(values.group ?? values.user);
    process.setuid?.(values.user);
  }
  const close = (): void => {
    capture.close();
    print({ event: 'closed', datagrams, rejected });
    process.exit(0);
  };
  process.on('SIGTERM', close);
  process.on('SIGINT', close);
  if (values.seconds !== undefined) setTimeout(close, Number(values.seconds) * 1000).unref();
  print({
    event: 'ready',
    linkTypes: Object.fromEntries(capture.linkTypes),
    immediateMode: capture.immediateMode,
    filter,
    uid: process.getuid?.(),
    gid: process.getgid?.(),
  });
} catch (error) {
  if (!isSknockError(error)) throw error;
  print({ event: 'error', code: error.code, message: error.message });
  process.exit(2);
}
