import { closeSync, mkdirSync, openSync, write, writeSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * The access log file as a pino destination: lines are collected and written in batches (every 64 KiB
 * or 200 ms, whichever comes first) with one asynchronous write, so a request costs an array push,
 * not a syscall or a string copy (sonic-boom re-measures its growing buffer on every line). At most
 * 200 ms of lines are lost if the process is killed; close() writes the rest synchronously.
 */
export class AccessLogFile {
  private readonly fd: number;
  private parts: string[] = [];
  private size = 0;
  private writing = false;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(file: string) {
    mkdirSync(dirname(file), { recursive: true });
    this.fd = openSync(file, 'a', 0o640);
  }

  /** pino calls this with one serialized line (newline included). */
  write(line: string): boolean {
    if (this.closed) return false;
    this.parts.push(line);
    this.size += line.length;
    if (this.size >= 65_536) this.flush();
    else if (this.timer === null) {
      this.timer = setTimeout(flushLater, 200, this);
      this.timer.unref();
    }
    return true;
  }

  /** @internal */
  flush(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.writing || this.parts.length === 0) return;
    const data = this.parts.join('');
    this.parts = [];
    this.size = 0;
    this.writing = true;
    write(this.fd, data, null, 'utf8', (err) => {
      this.writing = false;
      if (err && !this.closed) process.emitWarning(`access log write failed: ${err.message}`);
      if (this.closed) return;
      if (this.size >= 65_536) this.flush();
      else if (this.parts.length > 0 && this.timer === null) {
        this.timer = setTimeout(flushLater, 200, this);
        this.timer.unref();
      }
    });
  }

  /** Writes what is left synchronously and closes the file. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    // An asynchronous write may still be under way: appends keep order at the end of the file either way.
    if (this.parts.length > 0) {
      try {
        writeSync(this.fd, this.parts.join(''));
      } catch {}
    }
    this.parts = [];
    const fd = this.fd;
    if (this.writing) setTimeout(() => closeQuiet(fd), 1000).unref();
    else closeQuiet(fd);
  }
}

function flushLater(f: AccessLogFile): void {
  f.flush();
}

function closeQuiet(fd: number): void {
  try {
    closeSync(fd);
  } catch {}
}
