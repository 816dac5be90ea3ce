/** A decoder of untrusted bytes returns one of these and never throws. */
export type Decoded<T, Reason extends string> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly reason: Reason; readonly detail?: string };

export function accept<T>(value: T): { readonly ok: true; readonly value: T } {
  return { ok: true, value };
}

export function reject<Reason extends string>(
  reason: Reason,
  detail?: string,
): { readonly ok: false; readonly reason: Reason; readonly detail?: string } {
  return detail === undefined ? { ok: false, reason } : { ok: false, reason, detail };
}
