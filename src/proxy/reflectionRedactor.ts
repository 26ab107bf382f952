// Masks an injected credential where an upstream response echoes it back (an
// httpbin-style /headers endpoint, an error page that prints the request, a header
// that repeats Authorization), so the sandbox never reads what the proxy added.
// Every match is overwritten with the same number of `*` bytes, so Content-Length
// stays valid and bodies stream through without being buffered whole.

import { Transform, type TransformCallback } from 'node:stream';
import type { HeaderPairs } from './headers.ts';

/**
 * Patterns shorter than this are not searched for. A shorter secret would mask
 * unrelated bytes all over ordinary bodies. The full header value that carries
 * it (`Bearer …`, `Basic …`) is still searched.
 */
export const MIN_PATTERN_BYTES = 6;

const MASK_BYTE = 0x2a; // '*'

/**
 * Builds the byte strings that reveal one of `values` when a response contains them.
 * Each value is taken as is, URL-encoded (RFC 3986 and form style, upper- and
 * lower-case escapes) and escaped as inside a JSON string. It is also taken
 * base64-encoded (standard and URL-safe alphabets) at each of the three byte
 * alignments it can have inside a longer base64 text.
 */
export function reflectionPatterns(values: readonly string[]): Buffer[] {
  const forms = new Set<string>();
  for (const value of values) {
    if (value === '') continue;
    const uri = encodeURIComponent(value);
    forms.add(value);
    forms.add(uri);
    forms.add(uri.replace(/%[0-9A-F]{2}/g, (escape) => escape.toLowerCase()));
    forms.add(new URLSearchParams({ v: value }).toString().slice(2));
    forms.add(JSON.stringify(value).slice(1, -1));
    for (const encoded of alignedBase64(Buffer.from(value, 'utf8'))) {
      forms.add(encoded);
      forms.add(encoded.replace(/\+/g, '-').replace(/\//g, '_'));
    }
  }

  // Shortest first, so `Bearer abc…` becomes `Bearer ******` and the sandbox still sees which scheme was echoed.
  return [...forms]
    .map((form) => Buffer.from(form, 'utf8'))
    .filter((pattern) => pattern.length >= MIN_PATTERN_BYTES)
    .sort((a, b) => a.length - b.length);
}

/**
 * Returns the base64 characters that depend on `bytes` alone when they start at
 * offset 0, 1 or 2 (mod 3) of the encoded data. Characters that share bits with a
 * neighbouring byte are left out, because they differ with the surrounding text.
 */
function alignedBase64(bytes: Buffer): string[] {
  const results: string[] = [];
  for (let offset = 0; offset < 3; offset++) {
    const encoded = Buffer.concat([Buffer.alloc(offset), bytes]).toString('base64');
    const first = Math.ceil((8 * offset) / 6);
    const end = Math.floor((8 * (offset + bytes.length)) / 6);
    if (end > first) results.push(encoded.slice(first, end));
  }
  return results;
}

/** Overwrites every occurrence of every pattern, in the order given, with `*`; returns how many were found. */
export function maskInPlace(buffer: Buffer, patterns: readonly Buffer[]): number {
  let found = 0;
  for (const pattern of patterns) {
    let index = buffer.indexOf(pattern);
    while (index >= 0) {
      found++;
      buffer.fill(MASK_BYTE, index, index + pattern.length);
      index = buffer.indexOf(pattern, index + pattern.length);
    }
  }
  return found;
}

/** Returns `text` with every pattern masked, and the number of matches. */
export function maskText(text: string, patterns: readonly Buffer[], encoding: 'utf8' | 'latin1' = 'utf8'): { text: string; found: number } {
  const buffer = Buffer.from(text, encoding);
  const found = maskInPlace(buffer, patterns);
  return found === 0 ? { text, found } : { text: buffer.toString(encoding), found };
}

/** Masks header values that contain a pattern. Names are kept, so the sandbox still sees which header was there. */
export function redactHeaders(pairs: HeaderPairs, patterns: readonly Buffer[]): { headers: HeaderPairs; found: number } {
  let found = 0;
  const headers: HeaderPairs = pairs.map(([name, value]) => {
    // Node decodes header values as latin1, so they are compared byte for byte that way.
    const masked = maskText(value, patterns, 'latin1');
    found += masked.found;
    return [name, masked.text];
  });
  return { headers, found };
}

/**
 * A Transform that masks patterns in a streamed body, including matches split
 * across chunks. It holds back the last (longest pattern − 1) bytes of what it has
 * seen, because a match can only start there and end in a chunk still to come.
 * A longer pattern whose secret part is already masked no longer matches and is not counted again.
 */
export class ReflectionRedactor extends Transform {
  readonly #patterns: Buffer[];
  readonly #keep: number;
  readonly #onFound: (count: number) => void;
  #tail: Buffer = Buffer.alloc(0);

  constructor(patterns: readonly Buffer[], onFound: (count: number) => void) {
    super();
    this.#patterns = [...patterns];
    this.#keep = Math.max(0, ...this.#patterns.map((pattern) => pattern.length - 1));
    this.#onFound = onFound;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    const buffer = this.#tail.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.#tail, chunk]);
    this.#report(maskInPlace(buffer, this.#patterns));

    const ready = buffer.length - this.#keep;
    if (ready <= 0) {
      this.#tail = buffer;
      callback();
      return;
    }
    this.#tail = Buffer.from(buffer.subarray(ready));
    callback(null, buffer.subarray(0, ready));
  }

  override _flush(callback: TransformCallback): void {
    callback(null, this.#tail.length > 0 ? this.#tail : undefined);
  }

  #report(found: number): void {
    if (found > 0) this.#onFound(found);
  }
}
