import { chownSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect, it } from 'vitest';
import { prepareCrlFile } from '../../server/crl-refresh.js';
import { lookupUser } from '../../server/privileges.js';
import { describeWithNamespaces } from '../helpers/netns.js';

// Needs root, like the namespace tests: skipped with a message outside CI, a failure in CI.
describeWithNamespaces('prepareCrlFile (run as root before the privilege drop)', () => {
  it('hands a regular crlFile in the user\'s folder to the user, but never follows a symlink planted there', () => {
    const user = lookupUser('nobody');
    const root = mkdtempSync(path.join(tmpdir(), 'sknock-crl-perm-'));
    try {
      const folder = path.join(root, 'crl');
      prepareCrlFile(path.join(folder, 'crl.der'), user); // creates the folder for the user
      expect(statSync(folder).uid).toBe(user.uid);

      writeFileSync(path.join(folder, 'crl.der'), 'crl');
      prepareCrlFile(path.join(folder, 'crl.der'), user);
      expect(statSync(path.join(folder, 'crl.der')).uid).toBe(user.uid);

      const secret = path.join(root, 'secret');
      writeFileSync(secret, 'root only', { mode: 0o600 });
      chownSync(secret, 0, 0);
      symlinkSync(secret, path.join(folder, 'planted.der'));
      prepareCrlFile(path.join(folder, 'planted.der'), user);
      expect(statSync(secret).uid).toBe(0);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
