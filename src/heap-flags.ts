/**
 * The V8 heap settings the agent sets up for itself. A user starts `node dist/cli.js …` or
 * `npx dsr-agent …` without node flags, and V8's defaults, sized from the machine's memory, let a
 * process that reads large access responses grow well past 256 MiB (docs/PERFORMANCE.md,
 * "Goal 3: large responses").
 */

/**
 * The flags, and why:
 * - `--max-semi-space-size=16`: while an object of hundreds of KB is parsed and flattened it
 *   survives scavenges, and V8 then grows the young generation to two 64 MiB semi-spaces.
 * - `--heap-growing-percent=50`: the old generation is collected sooner, so promoted garbage does
 *   not pile up between major collections. Node refuses this one in NODE_OPTIONS.
 */
export const HEAP_FLAGS: readonly string[] = ['--max-semi-space-size=16', '--heap-growing-percent=50'];

/** A node flag's name: `--max_semi_space_size=8` → `--max-semi-space-size`. */
const flagName = (arg: string): string => (arg.split('=')[0] ?? arg).replace(/_/g, '-');

/** The {@link HEAP_FLAGS} that neither node's command line (`execArgv`) nor NODE_OPTIONS sets: a user's own setting wins. */
export function missingHeapFlags(execArgv: readonly string[], nodeOptions = ''): string[] {
  const given = new Set([...execArgv, ...nodeOptions.split(/\s+/)].map(flagName));
  return HEAP_FLAGS.filter((f) => !given.has(flagName(f)));
}

/**
 * The commands that read responses, and so get the heap flags. Restarting node costs the time to
 * load the program once more (about 0.1-0.2 s), which `validate` and `test` are spared.
 */
export const HEAP_FLAG_COMMANDS: readonly string[] = ['run', 'serve', 'sources'];

/** The CLI command in `args` (process.argv after the script): the first word that is not an option or the value of -c/--config. */
export function commandOf(args: readonly string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '-c' || a === '--config') i++;
    else if (!a.startsWith('-')) return a;
  }
  return undefined;
}

/** The argv that starts this script again with the missing heap flags; undefined when none is missing or the command needs none. */
export function heapFlagsArgv(proc: { execPath: string; execArgv: readonly string[]; argv: readonly string[] }, nodeOptions?: string): string[] | undefined {
  const command = commandOf(proc.argv.slice(2));
  if (command === undefined || !HEAP_FLAG_COMMANDS.includes(command)) return undefined;
  const missing = missingHeapFlags(proc.execArgv, nodeOptions);
  return missing.length ? [proc.execPath, ...proc.execArgv, ...missing, ...proc.argv.slice(1)] : undefined;
}

/**
 * Replace this process with node started with the missing {@link HEAP_FLAGS} (process.execve: the
 * same pid, stdio and environment, no second process). Call it before anything is written or
 * started. Where process.execve is missing (Windows) or fails, the process goes on with V8's defaults.
 */
export function applyHeapFlags(nodeOptions?: string): void {
  const argv = heapFlagsArgv(process, nodeOptions);
  if (!argv || typeof process.execve !== 'function') return;
  try {
    process.execve(process.execPath, argv);
  } catch {
    // Not fatal: the agent still works, with V8's default heap sizing.
  }
}
