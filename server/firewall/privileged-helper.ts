/**
 * The root firewall helper: `node dist/server/firewall/privileged-helper.js '<backend options JSON>'`.
 * The daemon starts it before dropping privileges and then talks to it over
 * stdin/stdout (see helper-protocol.ts); the argv fixes the backend for good.
 */
import { createFirewallBackend } from './index.js';
import { parseBackendOptions, serveHelper } from './helper-protocol.js';

const options = parseBackendOptions(process.argv[2] ?? '');
if (!options.ok) {
  process.stderr.write(`sknock firewall helper: bad backend options (${options.reason}): ${options.detail ?? ''}\n`);
  process.exit(2);
}
await serveHelper(createFirewallBackend(options.value), process.stdin, process.stdout);
// The daemon is gone; an `nft -i` session child must not keep this process alive.
process.exit(0);
