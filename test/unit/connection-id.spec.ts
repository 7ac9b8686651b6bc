import { describe, expect, it } from '@jest/globals';
import { connectionId } from '../../lib/connection/connection-id.js';

const UUID_V4 =
  /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('connectionId', () => {
  it('makes random version 4 UUIDs, as randomUUID() does', () => {
    // More than one draw of random bytes, so a refill is crossed.
    const ids = Array.from({ length: 2500 }, connectionId);
    for (const id of ids) expect(id).toMatch(UUID_V4);
    expect(new Set(ids).size).toBe(ids.length);
    // Every hex digit turns up in the random positions.
    const digits = new Set(ids.join('').replace(/-/g, ''));
    expect(digits.size).toBe(16);
  });

  it('gives each id its own string', () => {
    const first = connectionId();
    const copy = `${first}`;
    connectionId();
    expect(first).toBe(copy);
  });
});
