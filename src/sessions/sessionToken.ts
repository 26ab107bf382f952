import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

// 32 random bytes: 256 bits, well above the 128 bits a guessable proxy token must not fall below.
const TOKEN_BYTES = 32;
const ID_BYTES = 12;

export function generateSessionId(): string {
  return `ses_${randomBytes(ID_BYTES).toString('base64url')}`;
}

export function generateSessionToken(): string {
  return randomBytes(TOKEN_BYTES).toString('base64url');
}

export function hashSessionToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/** Compares a presented token with a stored hash in constant time. */
export function sessionTokenMatches(token: string, storedHash: Buffer): boolean {
  const presented = hashSessionToken(token);
  return presented.length === storedHash.length && timingSafeEqual(presented, storedHash);
}
