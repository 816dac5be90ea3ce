/**
 * The CA's two passwords: the one of the bundles it hands to servers and
 * clients, and the one of its own key store (ca.pfx). Each comes from a
 * value, a file or an environment variable, in that precedence (the client
 * library's rule); the CA's falls back to the bundles' so that a
 * development CA needs only one.
 */
import { SknockError, isSknockError } from '../../client-lib/errors.js';
import { PASSWORD_ENVIRONMENT_VARIABLE, resolvePassword } from '../../client-lib/password.js';

export interface PasswordFlags {
  readonly password?: string | undefined;
  readonly passwordFile?: string | undefined;
  readonly caPassword?: string | undefined;
  readonly caPasswordFile?: string | undefined;
}

export const caPasswordVariable = 'SKNOCK_CA_PASSWORD';

function usable(password: string): string {
  if (password === '') {
    throw new SknockError('SKNOCK_CA_EMPTY_PASSWORD', 'the password is empty: an empty password protects no key');
  }
  // OpenSSL encrypts PBES2 keys under the UTF-8 bytes, node-forge (the reader) under one byte per character.
  if (!/^[\x20-\x7e]+$/.test(password)) {
    throw new SknockError(
      'SKNOCK_CA_PASSWORD_NOT_ASCII',
      'the password must be printable ASCII: bundles with other characters would not open in the sKnock client and server',
    );
  }
  return password;
}

/** The password of the bundles this command writes: --password, --password-file, SKNOCK_PFX_PASSWORD. */
export function bundlePassword(flags: PasswordFlags, environment: NodeJS.ProcessEnv): string {
  return usable(resolvePassword({ password: flags.password, passwordFile: flags.passwordFile, environment }));
}

/** The password of ca.pfx: --ca-password, --ca-password-file, SKNOCK_CA_PASSWORD, else the bundle password. */
export function caKeyPassword(flags: PasswordFlags, environment: NodeJS.ProcessEnv): string {
  const caVariable = environment[caPasswordVariable];
  if (flags.caPassword !== undefined || flags.caPasswordFile !== undefined || caVariable !== undefined) {
    // The same rule under the CA's own names: its variable stands where the bundle variable would.
    const caEnvironment = { [PASSWORD_ENVIRONMENT_VARIABLE]: caVariable };
    return usable(resolvePassword({ password: flags.caPassword, passwordFile: flags.caPasswordFile, environment: caEnvironment }));
  }
  try {
    return bundlePassword(flags, environment);
  } catch (error) {
    if (!isSknockError(error, 'SKNOCK_NO_PASSWORD')) throw error;
    throw new SknockError(
      'SKNOCK_NO_PASSWORD',
      `no password for the CA key store ca.pfx: give --ca-password-file FILE or set ${caPasswordVariable} ` +
        `(or --password-file FILE / ${PASSWORD_ENVIRONMENT_VARIABLE}, which then serves for both)`,
      { cause: error },
    );
  }
}
