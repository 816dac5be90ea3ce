/**
 * V8 flags sknock-server runs with (the executable's first line passes the
 * same ones; a test holds the two equal). They apply to every isolate, the
 * verification workers included. A 1 MB semi-space (V8's default is 16) and
 * an old generation that grows by 10 % after each full collection (V8 lets
 * it grow up to 4x) keep the memory of a packet flood from piling up as
 * garbage between collections: under the benchmark's informed floods at
 * 5,000/s the daemon's RSS peaked 18-22 MB lower, with no cost measurable in
 * a knock's CPU time (see docs/PERFORMANCE.md).
 */
export const SERVER_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1', '--heap-growing-percent=10'];
