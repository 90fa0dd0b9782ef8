/**
 * The CLI's first import: before the rest of the program is evaluated, restart node with the
 * agent's heap flags when they are missing (src/heap-flags.ts). Only the entry point imports this.
 */
import { readEnv } from './env.js';
import { applyHeapFlags } from './heap-flags.js';

applyHeapFlags(readEnv().nodeOptions);
