import { closeSync, mkdirSync, openSync, write, writeSync } from 'node:fs';
import { dirname } from 'node:path';

/** Bytes collected before a write; a batch is also written after 200 ms. */
const BATCH = 65_536;

/**
 * The access log file as a pino destination: lines are encoded straight into a buffer and written in
 * batches (every 64 KiB or 200 ms, whichever comes first) with one asynchronous write, so a request
 * costs one string encoding, not a syscall (sonic-boom re-measures its growing buffer on every line;
 * joining an array of lines at flush time cost as much again — measured in src/proxy/README.md).
 * Two buffers alternate: one being written, one filling. At most 200 ms of lines are lost if the
 * process is killed; close() writes the rest synchronously.
 */
export class AccessLogFile {
  private readonly fd: number;
  private buf: Buffer = Buffer.allocUnsafe(BATCH * 2);
  private spare: Buffer | null = Buffer.allocUnsafe(BATCH * 2);
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
    // UTF-8 takes at most 3 bytes per UTF-16 unit.
    if (this.size + line.length * 3 > this.buf.length) this.grow(line.length * 3);
    this.size += this.buf.write(line, this.size, 'utf8');
    if (this.size >= BATCH) this.flush();
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
    if (this.writing || this.size === 0) return;
    const data = this.buf;
    const len = this.size;
    this.buf = this.spare ?? Buffer.allocUnsafe(BATCH * 2);
    this.spare = null;
    this.size = 0;
    this.writing = true;
    write(this.fd, data, 0, len, null, (err) => {
      this.writing = false;
      if (data.length === BATCH * 2) this.spare = data;
      if (err && !this.closed) process.emitWarning(`access log write failed: ${err.message}`);
      if (this.closed) return;
      if (this.size >= BATCH) this.flush();
      else if (this.size > 0 && this.timer === null) {
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
    if (this.size > 0) {
      try {
        writeSync(this.fd, this.buf, 0, this.size);
      } catch {}
    }
    this.size = 0;
    const fd = this.fd;
    if (this.writing) setTimeout(() => closeQuiet(fd), 1000).unref();
    else closeQuiet(fd);
  }

  /** A write is still under way and the filling buffer is full (slow disk): a larger one, copied. */
  private grow(need: number): void {
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.size + need));
    this.buf.copy(next, 0, 0, this.size);
    this.buf = next;
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
