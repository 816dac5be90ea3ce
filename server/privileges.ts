import { execFileSync } from 'node:child_process';
import { SknockError } from '../client-lib/errors.js';

export interface UnprivilegedUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
}

/** Looks the user up through NSS (getent), so LDAP/systemd users work too. */
export function lookupUser(name: string): UnprivilegedUser {
  let entry: string;
  try {
    entry = execFileSync('getent', ['passwd', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch (error) {
    throw new SknockError('SKNOCK_NO_SUCH_USER', `user "${name}" (key "user") does not exist on this system`, { cause: error });
  }
  const fields = entry.trim().split(':');
  const uid = Number(fields[2]);
  const gid = Number(fields[3]);
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) {
    throw new SknockError('SKNOCK_NO_SUCH_USER', `cannot read uid/gid of user "${name}" from getent`);
  }
  if (uid === 0) {
    throw new SknockError('SKNOCK_CONFIG_INVALID', `user "${name}" is root: the packet-parsing process must run unprivileged`);
  }
  return { name, uid, gid };
}

/**
 * Drops this process (all its threads) to `user` for good: supplementary
 * groups, then gid, then uid, and checks that root cannot be regained.
 */
export function dropPrivileges(user: UnprivilegedUser): void {
  process.setgroups?.([user.gid]);
  process.setgid?.(user.gid);
  process.setuid?.(user.uid);
  let regained = false;
  try {
    process.setuid?.(0);
    regained = true;
  } catch {
    // Expected: an unprivileged process cannot become root again.
  }
  if (regained || process.getuid?.() !== user.uid || process.geteuid?.() !== user.uid) {
    throw new SknockError('SKNOCK_PRIVILEGE_DROP_FAILED', `could not drop privileges to user ${user.name}`);
  }
}
