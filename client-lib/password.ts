import { readFileSync } from 'node:fs';
import { SknockError } from './errors.js';

export interface PasswordSources {
  readonly password?: string | undefined;
  readonly passwordFile?: string | undefined;
  readonly environment?: NodeJS.ProcessEnv;
}

/** Environment variable consulted when neither --password nor --password-file is given. */
export const PASSWORD_ENVIRONMENT_VARIABLE = 'SKNOCK_PFX_PASSWORD';

/**
 * The PKCS#12 password from `--password`, `--password-file` or
 * SKNOCK_PFX_PASSWORD, in that order. A file's final newline is not part of it.
 */
export function resolvePassword(sources: PasswordSources): string {
  if (sources.password !== undefined) return sources.password;
  if (sources.passwordFile !== undefined) {
    try {
      return readFileSync(sources.passwordFile, 'utf8').replace(/\r?\n$/, '');
    } catch (error) {
      throw new SknockError(
        'SKNOCK_FILE_NOT_FOUND',
        `cannot read password file ${sources.passwordFile}: ${(error as NodeJS.ErrnoException).code ?? error}`,
        { cause: error },
      );
    }
  }
  const fromEnvironment = (sources.environment ?? process.env)[PASSWORD_ENVIRONMENT_VARIABLE];
  if (fromEnvironment !== undefined) return fromEnvironment;
  throw new SknockError(
    'SKNOCK_NO_PASSWORD',
    `no PKCS#12 password: give --password, --password-file or set ${PASSWORD_ENVIRONMENT_VARIABLE}`,
  );
}
