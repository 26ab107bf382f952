// Durations as the CLI and the bundles file write them: `30s`, `15m`, `1h30m`, `7d`,
// or a plain number of seconds (`90`).

const UNIT_MILLISECONDS = { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1_000 } as const;

type DurationUnit = keyof typeof UNIT_MILLISECONDS;

const UNITS_IN_ORDER: readonly DurationUnit[] = ['d', 'h', 'm', 's'];

const ACCEPTED_FORM = 'use whole numbers with units d, h, m, s in that order (30s, 15m, 1h30m, 7d) or a plain number of seconds (90)';

export class DurationError extends Error {
  override name = 'DurationError';
}

/**
 * Parses a duration into milliseconds. Each unit may appear once, largest first, so a
 * typo such as `30m1h` is rejected instead of being read as 90 minutes.
 */
export function parseDuration(text: string): number {
  const trimmed = text.trim();

  if (/^\d+$/.test(trimmed)) {
    return checkedMilliseconds(Number(trimmed) * UNIT_MILLISECONDS.s, text);
  }

  const parts = [...trimmed.matchAll(/(\d+)([a-z]+)/g)];
  const joined = parts.map((part) => part[0]).join('');
  if (parts.length === 0 || joined !== trimmed) {
    throw new DurationError(`invalid duration "${text}"; ${ACCEPTED_FORM}`);
  }

  let total = 0;
  let previousUnitIndex = -1;
  for (const [, amount, unit] of parts) {
    const unitIndex = UNITS_IN_ORDER.indexOf(unit as DurationUnit);
    if (unitIndex === -1) {
      throw new DurationError(`invalid duration "${text}": unknown unit "${unit}"; ${ACCEPTED_FORM}`);
    }
    if (unitIndex <= previousUnitIndex) {
      throw new DurationError(`invalid duration "${text}": unit "${unit}" is repeated or out of order; ${ACCEPTED_FORM}`);
    }
    previousUnitIndex = unitIndex;
    total += Number(amount) * UNIT_MILLISECONDS[unit as DurationUnit];
  }
  return checkedMilliseconds(total, text);
}

function checkedMilliseconds(milliseconds: number, text: string): number {
  if (!Number.isSafeInteger(milliseconds)) {
    throw new DurationError(`invalid duration "${text}": too large to represent in milliseconds`);
  }
  return milliseconds;
}

/**
 * Formats milliseconds in the form `parseDuration` reads (`1h30m`, `7d`, `0s`), rounded
 * to the nearest second because the format has no smaller unit.
 */
export function formatDuration(milliseconds: number): string {
  if (!Number.isFinite(milliseconds) || milliseconds < 0) {
    throw new RangeError(`cannot format duration ${milliseconds} ms; expected a finite number of milliseconds >= 0`);
  }

  let remaining = Math.round(milliseconds / UNIT_MILLISECONDS.s) * UNIT_MILLISECONDS.s;
  if (remaining === 0) {
    return '0s';
  }

  let text = '';
  for (const unit of UNITS_IN_ORDER) {
    const amount = Math.floor(remaining / UNIT_MILLISECONDS[unit]);
    if (amount > 0) {
      text += `${amount}${unit}`;
      remaining -= amount * UNIT_MILLISECONDS[unit];
    }
  }
  return text;
}
