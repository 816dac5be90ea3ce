/**
 * Errors thrown for the operator (bad input files, wrong password, bad
 * configuration). Attacker input never throws: it becomes a verdict.
 * Every error carries a stable `code` that callers, logs and tests match on.
 */
export class SknockError<Code extends string = string> extends Error {
  readonly code: Code;

  constructor(code: Code, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SknockError';
    this.code = code;
  }
}

export function isSknockError(value: unknown, code?: string): value is SknockError {
  return value instanceof SknockError && (code === undefined || value.code === code);
}
