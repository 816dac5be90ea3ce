/**
 * The root firewall helper:
 * `node dist/server/firewall/privileged-helper.js '<backend options JSON>' '<policy JSON>'`.
 * The daemon starts it before dropping privileges and then talks to it over
 * stdin/stdout (see helper-protocol.ts); the argv fixes the backend and the
 * policy for good, so the unprivileged side can only say when.
 */
import { createFirewallBackend, localRunner } from './index.js';
import { HelperSession, parseHelperArguments, serveHelper } from './helper-protocol.js';

const parsed = parseHelperArguments(process.argv.slice(2));
if (!parsed.ok) {
  process.stderr.write(`sknock firewall helper: bad arguments (${parsed.reason}): ${parsed.detail ?? ''}\n`);
  process.exit(2);
}
const warn = (message: string): void => void process.stderr.write(`sknock firewall helper: ${message}\n`);
await serveHelper(new HelperSession(createFirewallBackend(parsed.value.backend, localRunner, warn), parsed.value.policy), process.stdin, process.stdout);
// The daemon is gone; an `nft -i` session child must not keep this process alive.
process.exit(0);
