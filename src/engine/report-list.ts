/**
 * The reports one connection's access run wrote, in memory that does not grow with their number:
 * the first {@link REPORT_LIST_CAP} locations, the count, and the folder every location follows from.
 */
import { reportFileName } from '../storage/paths.js';

/**
 * How many report locations a connection's result lists (`reports`). Enough for every ordinary job;
 * beyond it the result says `reports_truncated: true`, and `report_count` with `report_location`
 * name every report: `<report_location>/report_<n>.csv` for n = 1 … report_count.
 */
export const REPORT_LIST_CAP = 1000;

/** What a connection's result says about its access reports (the fields of ConnectionResult). */
export interface ReportSummary {
  /** The first {@link REPORT_LIST_CAP} locations, in order (every location when they do not follow report_location). */
  reports: string[];
  /** How many reports were written. */
  report_count: number;
  /** The folder or key prefix of the reports: report n is `<report_location>/report_<n>.csv`. Absent with no report. */
  report_location?: string;
  /** True when `reports` lists fewer than `report_count` locations; absent otherwise. */
  reports_truncated?: true;
}

/**
 * Records report locations as the engine writes them, numbered 1, 2, … (array-like: `length` is
 * the count, `push` adds the next). The folder is taken from report 1 and every later location is
 * checked against it. A sink whose locations do not follow `<folder>/report_<n>.csv` keeps a full
 * list instead (nothing is lost; the stores of this agent always follow it).
 */
export class ReportList {
  #count = 0;
  #listed: string[] = [];
  /** The folder; null once a location did not follow it. */
  #folder: string | null = null;

  /** How many reports were written. */
  get length(): number {
    return this.#count;
  }

  /** Record the location of the next report. */
  push(location: string): void {
    const n = ++this.#count;
    if (n === 1) {
      const name = `/${reportFileName(1)}`;
      if (location.endsWith(name) && location.length > name.length) this.#folder = location.slice(0, -name.length);
    } else if (this.#folder !== null && location !== `${this.#folder}/${reportFileName(n)}`) {
      // The locations stop following the folder: list the ones left out so far, then keep every one.
      for (let k = this.#listed.length + 1; k < n; k++) this.#listed.push(`${this.#folder}/${reportFileName(k)}`);
      this.#folder = null;
    }
    if (n <= REPORT_LIST_CAP || this.#folder === null) this.#listed.push(location);
  }

  /** The result fields for the reports written so far (a copy). */
  summary(): ReportSummary {
    return {
      reports: [...this.#listed],
      report_count: this.#count,
      ...(this.#folder !== null && this.#count > 0 ? { report_location: this.#folder } : {}),
      ...(this.#listed.length < this.#count ? { reports_truncated: true as const } : {}),
    };
  }
}
