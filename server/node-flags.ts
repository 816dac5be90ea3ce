/**
 * V8 flags sknock-server runs with (the executable's first line passes the
 * same ones). A 2 MB young generation instead of V8's default 16 MB keeps the
 * main thread's memory flat under a packet flood (measured: RSS under the
 * benchmark's floods 180 -> 143 MB) for a few more, cheap scavenges.
 */
export const SERVER_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2'];
