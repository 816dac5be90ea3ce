import { defineConfig } from 'vitest/config';

/** The packet-path tests again with the native path switched off: node:crypto stays a tested fallback. */
const nodeCryptoFallbackTests = [
  'test/unit/protocol-v2.test.ts',
  'test/unit/protocol-legacy.test.ts',
  'test/unit/pipeline.test.ts',
  'test/unit/trust-state.test.ts',
  'test/unit/certificate-x509.test.ts',
  'test/unit/worker-pool.test.ts',
  'test/fuzz/*.test.ts',
];

export default defineConfig({
  test: {
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // The JSON report lets .ci/run print one plain summary line.
    reporters: ['default', ['json', { outputFile: 'test-results.json' }]],
    projects: [
      { extends: true, test: { name: 'sknock', include: ['test/**/*.test.ts'] } },
      { extends: true, test: { name: 'node-crypto-fallback', include: nodeCryptoFallbackTests, env: { SKNOCK_NATIVE_P256: 'off' } } },
    ],
  },
});
