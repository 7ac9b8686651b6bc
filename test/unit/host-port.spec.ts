import { describe, expect, it } from '@jest/globals';
import { formatHostPort } from '../../lib/utils/host-port.js';

describe('formatHostPort', () => {
  it('joins a host name or an IPv4 address and a port with a colon', () => {
    expect(formatHostPort('localhost', 4000)).toBe('localhost:4000');
    expect(formatHostPort('203.0.113.9', 23)).toBe('203.0.113.9:23');
  });

  it('puts an IPv6 address in brackets', () => {
    expect(formatHostPort('::1', 4000)).toBe('[::1]:4000');
    expect(formatHostPort('2001:db8::1', 0)).toBe('[2001:db8::1]:0');
    expect(formatHostPort('::ffff:1.2.3.4', 80)).toBe('[::ffff:1.2.3.4]:80');
  });
});
