/**
 * The report-storage seam: one module per `platform.storage_manager.provider`, each a
 * {@link StorageProvider}. `validate` and `serve` both run `check`; `make` builds the storage and
 * loads its SDK only on first use.
 */
import type { AgentEnv } from '../env.js';
import type { OptionProblem } from '../credentials/provider.js';
import type { ReportStorage } from './sink.js';

export type { OptionProblem } from '../credentials/provider.js';
export { makeOptionChecker } from '../credentials/provider.js';

/** What a storage provider is built with besides its options. */
export interface StorageProviderContext {
  /** The agent's data folder; Local reports default to `<dataDir>/reports`. */
  readonly dataDir: string;
  /** Folder relative paths resolve against (the config file's folder). */
  readonly baseDir: string;
  /** The environment, read once in src/env.ts (cloud credentials, emulator endpoints). */
  readonly env: AgentEnv;
}

/** A storage manager type. */
export interface StorageProvider {
  /** The `provider` value, e.g. "AzureBlob". */
  readonly name: string;
  /** Every problem with `options`; [] when they are fine. */
  check(options: Readonly<Record<string, unknown>>): OptionProblem[];
  /**
   * Build the storage from options that passed `check`. Reports are written under
   * `<prefix>/<job id>/<connection uuid>/report_<n>.csv` (src/storage/paths.ts), streamed, never
   * buffered whole; `check()` of the result writes and deletes a probe object. Must not load the
   * cloud SDK before first use.
   */
  make(options: Readonly<Record<string, unknown>>, ctx: StorageProviderContext): ReportStorage;
}
