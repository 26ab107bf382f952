// Leaf certificates for the hosts whose TLS the proxy terminates, signed by the proxy's CA and
// cached as ready-to-use SecureContexts.

// @peculiar/x509 2.x needs the Reflect metadata polyfill loaded before the library is evaluated.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';
import { createSecureContext } from 'node:tls';
import type { SecureContext } from 'node:tls';
import { randomSerialNumber } from './ca.ts';
import type { CertificateAuthority } from './ca.ts';

x509.cryptoProvider.set(webcrypto);

const DAY_MS = 24 * 60 * 60 * 1000;
const CLOCK_SKEW_MS = 60 * 60 * 1000;
/** A leaf is re-minted once less than this much of its validity remains. */
const RENEW_BEFORE_EXPIRY_MS = DAY_MS;
/** RFC 5280 upper bound (ub-common-name) on the length of a subject common name. */
const MAX_COMMON_NAME_LENGTH = 64;

export const DEFAULT_MAX_ENTRIES = 1000;
export const DEFAULT_VALIDITY_DAYS = 30;

export interface LeafCertificateCacheOptions {
  /** Maximum number of host names whose SecureContext stays cached. */
  maxEntries?: number;
  /** Validity of each leaf in days, counted from minting. Must exceed 1, the renewal margin. */
  validityDays?: number;
  /** Clock for validity dates and renewal. */
  now?: () => Date;
}

export interface LeafCertificateCacheStats {
  /** Leaf certificates signed. */
  mints: number;
  /** Calls that returned a context without signing, from the cache or by joining a mint already in flight. */
  hits: number;
  /** Host names cached now. */
  size: number;
}

/** A host name as it appears in a certificate, either a lower-case DNS name or a canonical IP address. */
interface CertificateName {
  value: string;
  type: 'dns' | 'ip';
}

interface CacheEntry {
  context: SecureContext;
  renewAt: number;
}

/** The key pair shared by every leaf of one cache, and the extensions derived from keys alone. */
interface LeafKeyMaterial {
  publicKey: webcrypto.CryptoKey;
  privateKeyPem: string;
  subjectKeyIdentifier: x509.SubjectKeyIdentifierExtension;
  authorityKeyIdentifier: x509.AuthorityKeyIdentifierExtension;
}

/**
 * Mints leaf certificates signed by the CA and caches their SecureContexts in a bounded LRU.
 *
 * Every leaf of one cache carries the same ECDSA P-256 key pair, generated on the first mint, so a
 * new host costs one signature and no key generation. Concurrent calls for one name share a mint.
 */
export class LeafCertificateCache {
  readonly #ca: CertificateAuthority;
  readonly #maxEntries: number;
  readonly #validityMs: number;
  readonly #now: () => Date;

  /** Cached contexts by name, least recently used first (Map keeps insertion order). */
  readonly #entries = new Map<string, CacheEntry>();
  readonly #inFlight = new Map<string, Promise<SecureContext>>();
  #leafKeyMaterial: Promise<LeafKeyMaterial> | undefined;
  #mints = 0;
  #hits = 0;

  constructor(ca: CertificateAuthority, options: LeafCertificateCacheOptions = {}) {
    const maxEntries = options.maxEntries ?? DEFAULT_MAX_ENTRIES;
    if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) {
      throw new RangeError(`Invalid maxEntries ${maxEntries}: expected a positive integer.`);
    }
    const validityDays = options.validityDays ?? DEFAULT_VALIDITY_DAYS;
    if (!Number.isFinite(validityDays) || validityDays <= RENEW_BEFORE_EXPIRY_MS / DAY_MS) {
      throw new RangeError(
        `Invalid validityDays ${validityDays}: expected more than 1, because a leaf is renewed when less than a day of validity remains.`,
      );
    }

    this.#ca = ca;
    this.#maxEntries = maxEntries;
    this.#validityMs = validityDays * DAY_MS;
    this.#now = options.now ?? (() => new Date());
  }

  /**
   * Returns a SecureContext whose certificate chain (leaf, then CA) is valid for `name`, a DNS host
   * name or an IP address. Equivalent spellings (case, a trailing dot, IPv6 forms) share one entry.
   */
  async secureContextFor(name: string): Promise<SecureContext> {
    const certificateName = parseCertificateName(name);
    const key = certificateName.value;

    const entry = this.#entries.get(key);
    if (entry && entry.renewAt > this.#now().getTime()) {
      this.#entries.delete(key);
      this.#entries.set(key, entry);
      this.#hits += 1;
      return entry.context;
    }

    const pending = this.#inFlight.get(key);
    if (pending) {
      this.#hits += 1;
      return pending;
    }

    const minting = this.#mint(certificateName).finally(() => {
      this.#inFlight.delete(key);
    });
    this.#inFlight.set(key, minting);
    return minting;
  }

  stats(): LeafCertificateCacheStats {
    return { mints: this.#mints, hits: this.#hits, size: this.#entries.size };
  }

  async #mint(name: CertificateName): Promise<SecureContext> {
    const keyMaterial = await this.#keyMaterial();
    const now = this.#now().getTime();
    const notBefore = new Date(now - CLOCK_SKEW_MS);
    // A leaf outliving its CA would fail verification anyway, and the earlier date triggers renewal on time.
    const notAfter = new Date(Math.min(now + this.#validityMs, this.#ca.certificate.notAfter.getTime()));

    // A name too long for a common name goes in the SAN only, and RFC 5280 section 4.2.1.6 then
    // requires an empty subject and a critical SAN extension.
    const fitsCommonName = name.value.length <= MAX_COMMON_NAME_LENGTH;
    const subject: x509.JsonName = fitsCommonName ? [{ CN: [name.value] }] : [];

    const certificate = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerialNumber(),
      subject,
      issuer: this.#ca.certificate.subjectName,
      notBefore,
      notAfter,
      publicKey: keyMaterial.publicKey,
      signingKey: this.#ca.privateKey,
      signingAlgorithm: this.#ca.signingAlgorithm,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension([{ type: name.type, value: name.value }], !fitsCommonName),
        keyMaterial.subjectKeyIdentifier,
        keyMaterial.authorityKeyIdentifier,
      ],
    });
    this.#mints += 1;

    const context = createSecureContext({
      key: keyMaterial.privateKeyPem,
      cert: `${certificate.toString('pem')}\n${this.#ca.certPem}`,
    });
    this.#store(name.value, { context, renewAt: notAfter.getTime() - RENEW_BEFORE_EXPIRY_MS });
    return context;
  }

  #store(key: string, entry: CacheEntry): void {
    this.#entries.delete(key);
    this.#entries.set(key, entry);
    for (const oldestKey of this.#entries.keys()) {
      if (this.#entries.size <= this.#maxEntries) {
        break;
      }
      this.#entries.delete(oldestKey);
    }
  }

  #keyMaterial(): Promise<LeafKeyMaterial> {
    if (!this.#leafKeyMaterial) {
      this.#leafKeyMaterial = createLeafKeyMaterial(this.#ca);
      // A failed generation is retried by the next mint instead of failing every later one.
      this.#leafKeyMaterial.catch(() => {
        this.#leafKeyMaterial = undefined;
      });
    }
    return this.#leafKeyMaterial;
  }
}

async function createLeafKeyMaterial(ca: CertificateAuthority): Promise<LeafKeyMaterial> {
  const keys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);

  // Windows SChannel rejects a leaf whose subject key identifier equals its CA's, because it then
  // takes the leaf for its own issuer (mitmproxy hit this when its leaves reused the CA key). This
  // leaf key differs from the CA key, so its identifier differs too.
  const subjectKeyIdentifier = await x509.SubjectKeyIdentifierExtension.create(keys.publicKey);

  // RFC 5280 section 4.2.1.2 requires the authority identifier to equal the CA's subject identifier,
  // which a CA may have derived by any method, so it is copied. A CA without one gets the SHA-1 form.
  const caKeyIdentifier = ca.certificate.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
  const authorityKeyIdentifier = caKeyIdentifier
    ? new x509.AuthorityKeyIdentifierExtension(caKeyIdentifier)
    : await x509.AuthorityKeyIdentifierExtension.create(ca.certificate.publicKey);

  return {
    publicKey: keys.publicKey,
    privateKeyPem: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY'),
    subjectKeyIdentifier,
    authorityKeyIdentifier,
  };
}

const DNS_LABEL = /^[a-z0-9_-]{1,63}$/;
const MAX_DNS_NAME_LENGTH = 253;

/** Validates a host name and returns the canonical spelling that goes in the certificate. */
function parseCertificateName(name: string): CertificateName {
  const unbracketed = name.startsWith('[') && name.endsWith(']') ? name.slice(1, -1) : name;

  if (isIPv4(unbracketed)) {
    return { value: unbracketed, type: 'ip' };
  }
  if (isIPv6(unbracketed)) {
    if (unbracketed.includes('%')) {
      throw new TypeError(`Invalid certificate name "${name}": an IPv6 zone id cannot appear in a certificate. Pass the address without "%${unbracketed.split('%')[1]}".`);
    }
    // The WHATWG URL parser prints IPv6 addresses in the RFC 5952 canonical form.
    return { value: new URL(`http://[${unbracketed}]`).hostname.slice(1, -1), type: 'ip' };
  }

  const dnsName = name.toLowerCase().replace(/\.$/, '');
  const labels = dnsName.split('.');
  if (dnsName.length === 0 || dnsName.length > MAX_DNS_NAME_LENGTH || !labels.every((label) => DNS_LABEL.test(label))) {
    throw new TypeError(
      `Invalid certificate name "${name}": expected an IP address or a DNS host name of at most ${MAX_DNS_NAME_LENGTH} characters ` +
        'made of dot-separated labels of 1 to 63 letters, digits, "-" or "_" (convert international names to punycode first).',
    );
  }
  return { value: dnsName, type: 'dns' };
}
