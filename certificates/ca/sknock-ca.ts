#!/usr/bin/env node
/** The sknock-ca executable: the whole command lives in cli.ts. */
import { main } from './cli.js';

process.exitCode = await main(process.argv.slice(2));
