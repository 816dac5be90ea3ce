/**
 * Finds and loads one of the project's optional native addons
 * (native/build/Release/NAME.node, built by `npm ci` or `npm run
 * build:native`). Callers name where it lies relative to themselves, since
 * they run both from their sources (under vitest) and from dist/.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export type NativeAddonLoad<Addon> =
  | { readonly loaded: true; readonly addon: Partial<Addon> }
  | { readonly loaded: false; readonly problem: 'not-built' | 'load-failed'; readonly detail?: string };

/** The addon's exports as loaded (unchecked: the caller checks what it needs), or why there are none. */
export function loadNativeAddon<Addon>(moduleUrl: string, candidates: readonly string[]): NativeAddonLoad<Addon> {
  const found = candidates.map((candidate) => new URL(candidate, moduleUrl)).find((url) => existsSync(url));
  if (found === undefined) return { loaded: false, problem: 'not-built' };
  try {
    return { loaded: true, addon: createRequire(moduleUrl)(fileURLToPath(found)) as Partial<Addon> };
  } catch (error) {
    return { loaded: false, problem: 'load-failed', detail: error instanceof Error ? error.message : String(error) };
  }
}
