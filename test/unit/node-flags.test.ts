/**
 * The server's V8 flags live in two places: SERVER_NODE_FLAGS (the benchmark,
 * the lab) and the executable's first line (how `sknock-server` is started).
 * They must say the same thing.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SERVER_NODE_FLAGS } from '../../server/node-flags.js';
import { repoRoot } from '../helpers/fixtures.js';

describe('the server executable', () => {
  it('starts node with exactly SERVER_NODE_FLAGS', () => {
    const firstLine = readFileSync(path.join(repoRoot, 'server', 'sknock-server.ts'), 'utf8').split('\n')[0];
    expect(firstLine).toBe(`#!/usr/bin/env -S node ${SERVER_NODE_FLAGS.join(' ')}`);
  });

  it('passes flags this node accepts', () => {
    const started = spawnSync(process.execPath, [...SERVER_NODE_FLAGS, '-e', 'process.exit(0)'], { encoding: 'utf8' });
    expect(started.stderr).toBe('');
    expect(started.status).toBe(0);
  });
});
