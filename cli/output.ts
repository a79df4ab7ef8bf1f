/** Terminal output: tables, progress bars, and the stable JSON form scripts read. */

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function table(headers: string[], rows: (string | number | null | undefined)[][]): string {
  const cells = rows.map((row) => row.map((cell) => (cell === null || cell === undefined ? "" : String(cell))));
  const widths = headers.map((header, column) => Math.max(header.length, ...cells.map((row) => (row[column] ?? "").length)));
  const line = (row: string[]) =>
    row
      .map((cell, column) => cell.padEnd(widths[column]!))
      .join("  ")
      .trimEnd();
  return [line(headers), line(widths.map((width) => "-".repeat(width))), ...cells.map(line)].join("\n");
}

export function truncate(text: string, length: number): string {
  const oneLine = text.replace(/\s+/g, " ").trim();
  return oneLine.length <= length ? oneLine : `${oneLine.slice(0, length - 1)}…`;
}

export function formatDuration(ms: number): string {
  if (ms < 1_000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1_000).toFixed(1)} s`;
  const minutes = Math.floor(ms / 60_000);
  return `${minutes} min ${Math.round((ms % 60_000) / 1_000)} s`;
}

export function formatTime(date: Date | string | null | undefined): string {
  if (!date) return "";
  return new Date(date).toISOString().replace("T", " ").slice(0, 19);
}

export function percent(value: number | undefined): string {
  return value === undefined ? "-" : `${(value * 100).toFixed(1)}%`;
}

/**
 * A one-line progress bar redrawn in place on a terminal; elsewhere (CI logs, pipes) it prints a line
 * when the label changes or every tenth of the way, so logs stay readable.
 */
export class ProgressBar {
  private readonly tty = Boolean(process.stderr.isTTY);
  private lastLabel = "";
  private lastDecile = -1;
  private readonly started = Date.now();

  update(label: string, done: number, total: number): void {
    const fraction = total > 0 ? Math.min(1, done / total) : 0;
    const elapsed = formatDuration(Date.now() - this.started);
    if (this.tty) {
      const width = 28;
      const filled = Math.round(fraction * width);
      const bar = `${"█".repeat(filled)}${"░".repeat(width - filled)}`;
      process.stderr.write(`\r\x1b[2K${bar} ${String(Math.round(fraction * 100)).padStart(3)}%  ${label} ${done}/${total}  ${elapsed}`);
      return;
    }
    const decile = Math.floor(fraction * 10);
    if (label !== this.lastLabel || decile !== this.lastDecile) {
      process.stderr.write(`${label} ${done}/${total} (${Math.round(fraction * 100)}%, ${elapsed})\n`);
      this.lastLabel = label;
      this.lastDecile = decile;
    }
  }

  finish(): void {
    if (this.tty) process.stderr.write("\r\x1b[2K");
  }
}
