// IP address parsing and classification for the egress policy. Everything here is pure:
// no DNS, no sockets. Addresses are held as BigInt so IPv4 and IPv6 share one prefix
// comparison.

/** An IP literal in canonical text form: dotted decimal, or lower-case compressed IPv6 without brackets. */
export interface IpLiteral {
  family: 4 | 6;
  address: string;
}

/**
 * Names of the IANA special-purpose address blocks (RFC 6890 and its updates), plus
 * `metadata` for cloud instance metadata endpoints and `public` for everything else.
 */
export type AddressClass =
  | 'public'
  | 'loopback'
  | 'private'
  | 'link_local'
  | 'unique_local'
  | 'cgnat'
  | 'multicast'
  | 'unspecified'
  | 'metadata'
  | 'reserved'
  | 'broadcast'
  | 'documentation'
  | 'benchmarking'
  | 'discard';

export interface AddressClassification {
  class: AddressClass;
  /** Short phrase for logs and error bodies, e.g. "loopback address (127.0.0.0/8)". */
  reason: string;
}

/** An IP network. `address` is the canonical network address with every host bit zero. */
export interface Cidr {
  readonly family: 4 | 6;
  readonly address: string;
  readonly prefixLength: number;
}

export type AddressCheck =
  | { allowed: true; class: AddressClass }
  | { allowed: false; class: AddressClass; reason: string };

interface NumericAddress {
  family: 4 | 6;
  value: bigint;
}

const IPV4_BITS = 32;
const IPV6_BITS = 128;
const IPV4_MAPPED_PREFIX = 0xffffn << 32n;

// ---------------------------------------------------------------------------
// Parsing

/**
 * Parses an IP literal in any spelling that the WHATWG URL host parser accepts, and
 * returns its canonical form, or null for a host name.
 *
 * IPv4 follows inet_aton: one to four parts, each decimal, octal (leading `0`) or hex
 * (`0x`), the last part filling the remaining bytes (`127.1`, `2130706433`), and one
 * trailing dot allowed. IPv6 may be bracketed. Returns null for a zone id (`fe80::1%eth0`),
 * for out-of-range values (`256.1.1.1`) and for host names.
 * NOTE: percent-encoded or full-width spellings are not decoded here, so callers must pass
 * a host that a URL parser or the CONNECT line has already decoded.
 */
export function parseIpLiteral(host: string): IpLiteral | null {
  const numeric = parseNumericAddress(host);
  if (numeric === null) {
    return null;
  }
  return { family: numeric.family, address: formatAddress(numeric) };
}

/**
 * Returns whether a URL parser or resolver would read `host` as an IP address rather
 * than a name: it contains a colon or brackets, or its last label is a number (the WHATWG
 * "ends in a number" rule). True also for invalid literals such as `256.1.1.1`,
 * `1.2.3.4.5` and `example.123`, which callers should reject instead of resolving as names.
 */
export function looksLikeIpLiteral(host: string): boolean {
  if (host.includes(':') || host.startsWith('[')) {
    return true;
  }
  const parts = host.split('.');
  if (parts.at(-1) === '') {
    if (parts.length === 1) {
      return false;
    }
    parts.pop();
  }
  const last = parts.at(-1) ?? '';
  return /^[0-9]+$/.test(last) || parseIpv4Number(last) !== null;
}

function parseNumericAddress(host: string): NumericAddress | null {
  if (host.startsWith('[')) {
    if (!host.endsWith(']')) {
      return null;
    }
    const value = parseIpv6(host.slice(1, -1));
    return value === null ? null : { family: 6, value };
  }
  if (host.includes(':')) {
    const value = parseIpv6(host);
    return value === null ? null : { family: 6, value };
  }
  if (!looksLikeIpLiteral(host)) {
    return null;
  }
  const value = parseIpv4(host);
  return value === null ? null : { family: 4, value };
}

/** Parses one IPv4 part as the WHATWG "IPv4 number parser" does: `0x` hex, leading `0` octal, else decimal. */
function parseIpv4Number(part: string): bigint | null {
  if (part === '') {
    return null;
  }
  let digits = part;
  let radixPrefix = '';
  let pattern = /^[0-9]*$/;
  if (/^0x/i.test(part)) {
    digits = part.slice(2);
    radixPrefix = '0x';
    pattern = /^[0-9a-f]*$/i;
  } else if (part.length > 1 && part.startsWith('0')) {
    digits = part.slice(1);
    radixPrefix = '0o';
    pattern = /^[0-7]*$/;
  }
  if (!pattern.test(digits)) {
    return null;
  }
  // "0x" alone is zero in the URL standard.
  return digits === '' ? 0n : BigInt(radixPrefix + digits);
}

function parseIpv4(host: string): bigint | null {
  const parts = host.split('.');
  if (parts.at(-1) === '' && parts.length > 1) {
    parts.pop();
  }
  if (parts.length > 4) {
    return null;
  }

  const numbers: bigint[] = [];
  for (const part of parts) {
    const number = parseIpv4Number(part);
    if (number === null) {
      return null;
    }
    numbers.push(number);
  }

  // Every part but the last is one byte, and the last part fills all the bytes that remain.
  const last = numbers.pop() ?? 0n;
  if (numbers.some((number) => number > 255n)) {
    return null;
  }
  const lastBits = BigInt(8 * (4 - numbers.length));
  if (last >= 1n << lastBits) {
    return null;
  }
  let value = 0n;
  for (const [index, number] of numbers.entries()) {
    value |= number << BigInt(8 * (3 - index));
  }
  return value | last;
}

/** Parses RFC 4291 text form, with `::` and an optional dotted-decimal tail. Zone ids are rejected. */
function parseIpv6(text: string): bigint | null {
  if (!/^[0-9a-fA-F:.]+$/.test(text)) {
    return null;
  }
  const halves = text.split('::');
  if (halves.length > 2) {
    return null;
  }
  const head = parseIpv6Groups(halves[0] ?? '', halves.length === 1);
  const tail = halves.length === 2 ? parseIpv6Groups(halves[1] ?? '', true) : [];
  if (head === null || tail === null) {
    return null;
  }

  const groupCount = head.length + tail.length;
  if (halves.length === 1 ? groupCount !== 8 : groupCount > 7) {
    return null;
  }
  const groups = [...head, ...new Array<number>(8 - groupCount).fill(0), ...tail];
  let value = 0n;
  for (const group of groups) {
    value = (value << 16n) | BigInt(group);
  }
  return value;
}

/** Splits one side of `::` into 16-bit groups. Only the final side may end in dotted decimal IPv4. */
function parseIpv6Groups(text: string, mayEndInIpv4: boolean): number[] | null {
  if (text === '') {
    return [];
  }
  const pieces = text.split(':');
  const groups: number[] = [];
  for (const [index, piece] of pieces.entries()) {
    const isLast = index === pieces.length - 1;
    if (isLast && mayEndInIpv4 && piece.includes('.')) {
      const ipv4 = parseStrictDottedDecimal(piece);
      if (ipv4 === null) {
        return null;
      }
      groups.push(Number(ipv4 >> 16n), Number(ipv4 & 0xffffn));
    } else if (/^[0-9a-fA-F]{1,4}$/.test(piece)) {
      groups.push(Number.parseInt(piece, 16));
    } else {
      return null;
    }
  }
  return groups;
}

/** Parses exactly four decimal bytes without leading zeros, the only IPv4 form allowed inside IPv6 and in CIDRs. */
function parseStrictDottedDecimal(text: string): bigint | null {
  const parts = text.split('.');
  if (parts.length !== 4) {
    return null;
  }
  let value = 0n;
  for (const part of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part) || Number(part) > 255) {
      return null;
    }
    value = (value << 8n) | BigInt(part);
  }
  return value;
}

// ---------------------------------------------------------------------------
// Formatting

function formatAddress(address: NumericAddress): string {
  return address.family === 4 ? formatIpv4(address.value) : formatIpv6(address.value);
}

function formatIpv4(value: bigint): string {
  return [24n, 16n, 8n, 0n].map((shift) => String((value >> shift) & 0xffn)).join('.');
}

/**
 * Formats IPv6 as RFC 5952 and the WHATWG URL serializer do: lower-case hex, the first
 * longest run of two or more zero groups written as `::`. An embedded IPv4 address is
 * written in hex too (`::ffff:7f00:1`), which is what `new URL(...).hostname` returns.
 */
function formatIpv6(value: bigint): string {
  const groups: number[] = [];
  for (let shift = 112n; shift >= 0n; shift -= 16n) {
    groups.push(Number((value >> shift) & 0xffffn));
  }

  let bestStart = -1;
  let bestLength = 1;
  for (let start = 0; start < 8; start++) {
    let length = 0;
    while (start + length < 8 && groups[start + length] === 0) {
      length++;
    }
    if (length > bestLength) {
      bestStart = start;
      bestLength = length;
    }
  }

  const hex = groups.map((group) => group.toString(16));
  if (bestStart === -1) {
    return hex.join(':');
  }
  const head = hex.slice(0, bestStart).join(':');
  const tail = hex.slice(bestStart + bestLength).join(':');
  return `${head}::${tail}`;
}

// ---------------------------------------------------------------------------
// CIDR

/**
 * Parses `address/prefixLength`, or a bare address as a /32 or /128. IPv4 must be four
 * decimal bytes here, because `10.1/16` means 10.1.0.0/16 to a network admin but 10.0.0.1
 * to inet_aton. Throws when host bits are set after the prefix, since `10.0.0.1/8` is
 * more often a typo than a request for all of 10.0.0.0/8.
 */
export function parseCidr(text: string): Cidr {
  const slash = text.indexOf('/');
  const addressText = slash === -1 ? text : text.slice(0, slash);
  const prefixText = slash === -1 ? null : text.slice(slash + 1);

  const address = parseCidrAddress(addressText);
  if (address === null) {
    throw new Error(
      `"${text}" is not a valid CIDR: "${addressText}" is not an IP address; ` +
        'write an IPv4 address as four decimal numbers (10.0.0.0/8) or an IPv6 address without brackets (fc00::/7)',
    );
  }

  const bits = address.family === 4 ? IPV4_BITS : IPV6_BITS;
  let prefixLength = bits;
  if (prefixText !== null) {
    prefixLength = /^[0-9]{1,3}$/.test(prefixText) ? Number(prefixText) : Number.NaN;
    if (!(prefixLength <= bits)) {
      throw new Error(
        `"${text}" is not a valid CIDR: the prefix length of an IPv${address.family} network is 0 to ${bits}`,
      );
    }
  }

  const network = address.value & prefixMask(prefixLength, bits);
  if (network !== address.value) {
    const suggestion = `${formatAddress({ family: address.family, value: network })}/${prefixLength}`;
    throw new Error(`"${text}" is not a valid CIDR: it has bits set after the prefix; write "${suggestion}"`);
  }
  return { family: address.family, address: formatAddress(address), prefixLength };
}

/** Formats a network as `address/prefixLength`. */
export function formatCidr(cidr: Cidr): string {
  return `${cidr.address}/${cidr.prefixLength}`;
}

function parseCidrAddress(text: string): NumericAddress | null {
  if (text.includes(':')) {
    const value = parseIpv6(text);
    return value === null ? null : { family: 6, value };
  }
  const value = parseStrictDottedDecimal(text);
  return value === null ? null : { family: 4, value };
}

function prefixMask(prefixLength: number, bits: number): bigint {
  const all = (1n << BigInt(bits)) - 1n;
  return all ^ ((1n << BigInt(bits - prefixLength)) - 1n);
}

/**
 * Returns whether `address` (any spelling `parseIpLiteral` accepts) is inside `cidr`.
 * IPv4 networks also contain the IPv4-mapped IPv6 form of their addresses, and IPv6
 * networks under ::ffff:0:0/96 contain the plain IPv4 form, because a dual-stack socket
 * reports one for the other. Returns false for a value that is not an IP address.
 */
export function cidrContains(cidr: Cidr, address: string): boolean {
  const numeric = parseNumericAddress(address);
  return numeric !== null && numericCidrContains(cidr, numeric);
}

function numericCidrContains(cidr: Cidr, address: NumericAddress): boolean {
  let candidate = address;
  if (cidr.family === 4 && address.family === 6 && isIpv4Mapped(address.value)) {
    candidate = { family: 4, value: address.value & 0xffffffffn };
  } else if (cidr.family === 6 && address.family === 4) {
    candidate = { family: 6, value: IPV4_MAPPED_PREFIX | address.value };
  }
  if (candidate.family !== cidr.family) {
    return false;
  }

  const bits = cidr.family === 4 ? IPV4_BITS : IPV6_BITS;
  const network = parseCidrAddress(cidr.address);
  if (network === null) {
    throw new Error(`CIDR "${formatCidr(cidr)}" has an invalid network address; build it with parseCidr`);
  }
  return (candidate.value & prefixMask(cidr.prefixLength, bits)) === network.value;
}

function isIpv4Mapped(value: bigint): boolean {
  return value >> 32n === 0xffffn;
}

// ---------------------------------------------------------------------------
// Classification

interface SpecialBlock {
  network: Cidr;
  class: AddressClass;
  reason: string;
}

interface NumericClassification extends AddressClassification {
  /** The IPv4 address that decided the class of an IPv6 address which embeds one. */
  embeddedIpv4?: NumericAddress;
  /**
   * Whether a connect to the IPv6 address reaches that IPv4 address, so a network allowing
   * the IPv4 address may allow it: true for IPv4-mapped (the kernel dials IPv4) and NAT64
   * (the gateway does), false for the deprecated IPv4-compatible form and 6to4, which go
   * elsewhere.
   */
  reachesEmbeddedIpv4?: boolean;
}

function block(cidr: string, addressClass: AddressClass, reason: string): SpecialBlock {
  return { network: parseCidr(cidr), class: addressClass, reason };
}

// Cloud metadata endpoints hand out instance credentials, so they get their own class and
// are checked before the wider block that contains them (link-local, CGNAT or public).
const METADATA_BLOCKS: readonly SpecialBlock[] = [
  // AWS EC2 IMDS, GCP, Azure IMDS, Oracle Cloud (OCI), DigitalOcean and OpenStack instance metadata.
  block('169.254.169.254/32', 'metadata', 'cloud metadata address (AWS/GCP/Azure/OCI/DigitalOcean/OpenStack instance metadata)'),
  // AWS EC2 IMDS over IPv6 (Nitro instances).
  block('fd00:ec2::254/128', 'metadata', 'cloud metadata address (AWS instance metadata over IPv6)'),
  // AWS ECS task metadata and task role credentials endpoint.
  block('169.254.170.2/32', 'metadata', 'cloud metadata address (AWS ECS task metadata and credentials)'),
  // AWS EKS Pod Identity agent, which serves pod role credentials on IPv4 and IPv6.
  block('169.254.170.23/32', 'metadata', 'cloud metadata address (AWS EKS Pod Identity credentials)'),
  block('fd00:ec2::23/128', 'metadata', 'cloud metadata address (AWS EKS Pod Identity credentials over IPv6)'),
  // AWS Amazon Time Sync Service (NTP), in the link-local range next to instance metadata.
  block('169.254.169.123/32', 'metadata', 'cloud metadata address (AWS Time Sync Service)'),
  // Alibaba Cloud ECS instance metadata, inside the CGNAT block.
  block('100.100.100.200/32', 'metadata', 'cloud metadata address (Alibaba Cloud instance metadata)'),
  // Azure WireServer (VM agent, extensions, DNS), a public address that only Azure VMs reach.
  block('168.63.129.16/32', 'metadata', 'cloud metadata address (Azure WireServer)'),
  // Google Cloud metadata server over IPv6, inside fc00::/7, so allowing a unique local network must not expose it.
  block('fd20:ce::254/128', 'metadata', 'cloud metadata address (Google Cloud instance metadata over IPv6)'),
  // Oracle Cloud (OCI) instance metadata over IPv6, as the OCI SDKs' instance principals signer calls it.
  block('fd00:c1::a9fe:a9fe/128', 'metadata', 'cloud metadata address (Oracle Cloud instance metadata over IPv6)'),
  // Oracle Cloud Classic metadata, inside 192.0.0.0/24.
  block('192.0.0.192/32', 'metadata', 'cloud metadata address (Oracle Cloud Classic instance metadata)'),
];

// Order matters where blocks nest: the first block containing the address wins.
const IPV4_BLOCKS: readonly SpecialBlock[] = [
  ...METADATA_BLOCKS.filter((entry) => entry.network.family === 4),
  block('0.0.0.0/32', 'unspecified', 'unspecified address (0.0.0.0)'),
  block('0.0.0.0/8', 'unspecified', '"this network" address (0.0.0.0/8)'),
  block('10.0.0.0/8', 'private', 'private address (10.0.0.0/8)'),
  block('100.64.0.0/10', 'cgnat', 'carrier-grade NAT shared address (100.64.0.0/10)'),
  block('127.0.0.0/8', 'loopback', 'loopback address (127.0.0.0/8)'),
  block('169.254.0.0/16', 'link_local', 'link-local address (169.254.0.0/16)'),
  block('172.16.0.0/12', 'private', 'private address (172.16.0.0/12)'),
  block('192.0.0.0/24', 'reserved', 'IETF protocol assignment (192.0.0.0/24)'),
  block('192.0.2.0/24', 'documentation', 'documentation address (192.0.2.0/24, TEST-NET-1)'),
  block('192.88.99.0/24', 'reserved', 'deprecated 6to4 relay anycast address (192.88.99.0/24)'),
  block('192.168.0.0/16', 'private', 'private address (192.168.0.0/16)'),
  block('198.18.0.0/15', 'benchmarking', 'benchmarking address (198.18.0.0/15)'),
  block('198.51.100.0/24', 'documentation', 'documentation address (198.51.100.0/24, TEST-NET-2)'),
  block('203.0.113.0/24', 'documentation', 'documentation address (203.0.113.0/24, TEST-NET-3)'),
  block('224.0.0.0/4', 'multicast', 'multicast address (224.0.0.0/4)'),
  block('255.255.255.255/32', 'broadcast', 'limited broadcast address (255.255.255.255)'),
  block('240.0.0.0/4', 'reserved', 'reserved address (240.0.0.0/4)'),
];

const IPV6_BLOCKS: readonly SpecialBlock[] = [
  ...METADATA_BLOCKS.filter((entry) => entry.network.family === 6),
  block('::/128', 'unspecified', 'unspecified address (::)'),
  block('::1/128', 'loopback', 'loopback address (::1)'),
  block('64:ff9b:1::/48', 'reserved', 'local-use IPv4/IPv6 translation address (64:ff9b:1::/48)'),
  block('100::/64', 'discard', 'discard-only address (100::/64)'),
  block('2001:db8::/32', 'documentation', 'documentation address (2001:db8::/32)'),
  block('2001:2::/48', 'benchmarking', 'benchmarking address (2001:2::/48)'),
  // Also covers Teredo (2001::/32), whose embedded IPv4 is obfuscated.
  block('2001::/23', 'reserved', 'IETF protocol assignment (2001::/23)'),
  block('3fff::/20', 'documentation', 'documentation address (3fff::/20)'),
  block('fc00::/7', 'unique_local', 'unique local address (fc00::/7)'),
  block('fe80::/10', 'link_local', 'link-local address (fe80::/10)'),
  block('fec0::/10', 'reserved', 'deprecated site-local address (fec0::/10)'),
  block('ff00::/8', 'multicast', 'multicast address (ff00::/8)'),
];

// IANA has allocated only 2000::/3 for global unicast, so the rest of the space is reserved.
const IPV6_GLOBAL_UNICAST = parseCidr('2000::/3');

/**
 * Classifies an IP address (any spelling `parseIpLiteral` accepts) by the IANA
 * special-purpose registries. An IPv6 address that embeds an IPv4 address (IPv4-mapped,
 * IPv4-compatible, NAT64 64:ff9b::/96, 6to4 2002::/16) gets the class of that IPv4
 * address, since traffic to it can end up there. Throws for a value that is not an IP address.
 */
export function classifyAddress(address: string): AddressClassification {
  const classification = classifyNumeric(requireAddress(address));
  return { class: classification.class, reason: classification.reason };
}

function requireAddress(address: string): NumericAddress {
  const numeric = parseNumericAddress(address);
  if (numeric === null) {
    throw new Error(`"${address}" is not an IP address; resolve the host name first and pass the resolved address`);
  }
  return numeric;
}

function classifyNumeric(address: NumericAddress): NumericClassification {
  if (address.family === 4) {
    return findBlock(IPV4_BLOCKS, address) ?? { class: 'public', reason: 'public address' };
  }

  const special = findBlock(IPV6_BLOCKS, address);
  if (special !== null) {
    return special;
  }

  const embedded = findEmbeddedIpv4(address.value);
  if (embedded !== null) {
    const ipv4 = { family: 4 as const, value: embedded.value };
    const inner = classifyNumeric(ipv4);
    return {
      class: inner.class,
      reason: `${inner.reason} embedded in ${embedded.form}`,
      embeddedIpv4: ipv4,
      reachesEmbeddedIpv4: embedded.reachesIpv4,
    };
  }

  if (!numericCidrContains(IPV6_GLOBAL_UNICAST, address)) {
    return { class: 'reserved', reason: 'reserved address outside IPv6 global unicast (2000::/3)' };
  }
  return { class: 'public', reason: 'public address' };
}

function findBlock(blocks: readonly SpecialBlock[], address: NumericAddress): NumericClassification | null {
  const found = blocks.find((entry) => numericCidrContains(entry.network, address));
  return found === undefined ? null : { class: found.class, reason: found.reason };
}

/** Returns the IPv4 address inside an IPv6 address of a form that carries one, with the form's name. */
function findEmbeddedIpv4(value: bigint): { value: bigint; form: string; reachesIpv4: boolean } | null {
  const low32 = value & 0xffffffffn;
  if (isIpv4Mapped(value)) {
    return { value: low32, form: 'an IPv4-mapped address (::ffff:0:0/96)', reachesIpv4: true };
  }
  // :: and ::1 are classified before this point, so anything left under ::/96 is IPv4-compatible.
  if (value >> 32n === 0n) {
    return { value: low32, form: 'an IPv4-compatible address (::/96)', reachesIpv4: false };
  }
  if (value >> 32n === 0x0064ff9b_00000000_00000000n) {
    return { value: low32, form: 'a NAT64 address (64:ff9b::/96)', reachesIpv4: true };
  }
  if (value >> 112n === 0x2002n) {
    return { value: (value >> 80n) & 0xffffffffn, form: 'a 6to4 address (2002::/16)', reachesIpv4: false };
  }
  return null;
}

/**
 * Decides whether the proxy may connect to a resolved address. Public addresses are
 * allowed. Every other class is rejected unless a network in `allowedNetworks` contains
 * the address, or the IPv4 address embedded in it that decided its class.
 *
 * A metadata address is allowed only by a network that contains nothing else (a /32, or
 * a /128 for IPv6), so that allowing 169.254.0.0/16 for a link-local service does not
 * also expose instance credentials. An unspecified address (0.0.0.0/8, ::) is never allowed.
 */
export function checkAddress(address: string, allowedNetworks: readonly Cidr[]): AddressCheck {
  const numeric = requireAddress(address);
  const classification = classifyNumeric(numeric);
  if (classification.class === 'public') {
    return { allowed: true, class: 'public' };
  }

  // Linux treats a connect to 0.0.0.0 or :: as a connect to the local host, so allowing
  // either would be a loopback allowance in disguise; they are never dialled.
  if (classification.class === 'unspecified') {
    return { allowed: false, class: classification.class, reason: classification.reason };
  }

  const candidates = [numeric];
  if (classification.embeddedIpv4 !== undefined && classification.reachesEmbeddedIpv4 === true) {
    candidates.push(classification.embeddedIpv4);
  }
  const allowedBy = allowedNetworks.find((network) => {
    if (classification.class === 'metadata' && !isSingleAddress(network)) {
      return false;
    }
    return candidates.some((candidate) => numericCidrContains(network, candidate));
  });
  if (allowedBy !== undefined) {
    return { allowed: true, class: classification.class };
  }
  return { allowed: false, class: classification.class, reason: classification.reason };
}

function isSingleAddress(network: Cidr): boolean {
  return network.prefixLength === (network.family === 4 ? IPV4_BITS : IPV6_BITS);
}
