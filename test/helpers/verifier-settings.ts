import type { VerifierSettings } from '../../server/verify/pipeline.js';

/** The original's defaults (800 bytes, ±7 s, 15 s open) with a 60 s cap on requested durations. */
export const testVerifierSettings: VerifierSettings = {
  minFrameLength: 800,
  legacyKnocks: true,
  allowSourceAddressMode: false,
  timestampWindowMs: 7000,
  grantDurationSeconds: 15,
  maxGrantDurationSeconds: 60,
};
