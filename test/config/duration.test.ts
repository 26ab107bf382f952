import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DurationError, formatDuration, parseDuration } from '../../src/config/duration.ts';

describe('parseDuration', () => {
  const cases: Array<[string, number]> = [
    ['30s', 30_000],
    ['15m', 900_000],
    ['1h', 3_600_000],
    ['7d', 604_800_000],
    ['1h30m', 5_400_000],
    ['1d2h3m4s', 93_784_000],
    ['90', 90_000],
    ['0s', 0],
    [' 5m ', 300_000],
  ];
  for (const [text, milliseconds] of cases) {
    test(`reads ${JSON.stringify(text)}`, () => {
      assert.equal(parseDuration(text), milliseconds);
    });
  }

  test('rejects text without units', () => {
    assert.throws(() => parseDuration('abc'), {
      name: 'DurationError',
      message: 'invalid duration "abc"; use whole numbers with units d, h, m, s in that order (30s, 15m, 1h30m, 7d) or a plain number of seconds (90)',
    });
  });

  test('rejects an unknown unit', () => {
    assert.throws(() => parseDuration('5w'), {
      message: 'invalid duration "5w": unknown unit "w"; use whole numbers with units d, h, m, s in that order (30s, 15m, 1h30m, 7d) or a plain number of seconds (90)',
    });
  });

  test('rejects units out of order', () => {
    assert.throws(() => parseDuration('30m1h'), {
      message: 'invalid duration "30m1h": unit "h" is repeated or out of order; use whole numbers with units d, h, m, s in that order (30s, 15m, 1h30m, 7d) or a plain number of seconds (90)',
    });
  });

  test('rejects repeated units', () => {
    assert.throws(() => parseDuration('1m1m'), DurationError);
  });

  for (const text of ['', '1.5h', '-5m', '1h 30m', 'h', '1H']) {
    test(`rejects ${JSON.stringify(text)}`, () => {
      assert.throws(() => parseDuration(text), DurationError);
    });
  }

  test('rejects a duration too large for milliseconds', () => {
    assert.throws(() => parseDuration('99999999999999999d'), {
      message: 'invalid duration "99999999999999999d": too large to represent in milliseconds',
    });
  });
});

describe('formatDuration', () => {
  const cases: Array<[number, string]> = [
    [0, '0s'],
    [30_000, '30s'],
    [5_400_000, '1h30m'],
    [604_800_000, '7d'],
    [93_784_000, '1d2h3m4s'],
    [1_499, '1s'],
    [400, '0s'],
  ];
  for (const [milliseconds, text] of cases) {
    test(`formats ${milliseconds} ms`, () => {
      assert.equal(formatDuration(milliseconds), text);
    });
  }

  test('output parses back', () => {
    assert.equal(parseDuration(formatDuration(93_784_000)), 93_784_000);
  });

  test('rejects negative values', () => {
    assert.throws(() => formatDuration(-1), RangeError);
  });
});
