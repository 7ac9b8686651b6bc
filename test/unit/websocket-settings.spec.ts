import { describe, expect, it } from '@jest/globals';
import { parseGmcpText } from '../../lib/websocket/gmcp-text.js';
import {
  chooseSubprotocol,
  originAllowed,
  resolveWebSocket,
  SUBPROTOCOLS,
} from '../../lib/websocket/websocket-settings.js';

describe('resolveWebSocket', () => {
  it('fills in the defaults: every subprotocol, path /, no origin list, 64 KiB, no deflate, 30 s pings', () => {
    const settings = resolveWebSocket({}, 'websocket');
    expect(settings).toEqual({
      subprotocols: SUBPROTOCOLS,
      defaultSubprotocol: null,
      path: '/',
      origins: null,
      maxPayload: 65536,
      perMessageDeflate: false,
      pingInterval: 30000,
    });
  });

  it('rejects unknown or repeated subprotocols, and a default not offered', () => {
    expect(() =>
      resolveWebSocket(
        { subprotocols: ['x' as 'telnet.mudstandards.org'] },
        'ws',
      ),
    ).toThrow(/ws\.subprotocols/);
    expect(() =>
      resolveWebSocket(
        {
          subprotocols: ['telnet.mudstandards.org', 'telnet.mudstandards.org'],
        },
        'ws',
      ),
    ).toThrow(/each once/);
    expect(() => resolveWebSocket({ subprotocols: [] }, 'ws')).toThrow(
      RangeError,
    );
    expect(() =>
      resolveWebSocket(
        {
          subprotocols: ['terminal.mudstandards.org'],
          defaultSubprotocol: 'gmcp.mudstandards.org',
        },
        'ws',
      ),
    ).toThrow(/defaultSubprotocol/);
  });

  it('rejects a path without a leading slash and bad numbers', () => {
    expect(() => resolveWebSocket({ path: 'ws' }, 'ws')).toThrow(/ws\.path/);
    expect(() => resolveWebSocket({ maxPayload: 0 }, 'ws')).toThrow(
      /maxPayload/,
    );
    expect(() => resolveWebSocket({ pingInterval: -1 }, 'ws')).toThrow(
      /pingInterval/,
    );
    expect(resolveWebSocket({ pingInterval: 0 }, 'ws').pingInterval).toBe(0);
    expect(resolveWebSocket({ path: null }, 'ws').path).toBeNull();
  });
});

describe('chooseSubprotocol', () => {
  const settings = resolveWebSocket(
    {
      subprotocols: ['gmcp.mudstandards.org', 'terminal.mudstandards.org'],
    },
    'ws',
  );

  it("takes the server's preferred one among those offered", () => {
    expect(
      chooseSubprotocol(
        settings,
        'terminal.mudstandards.org, gmcp.mudstandards.org',
      ),
    ).toBe('gmcp.mudstandards.org');
    expect(chooseSubprotocol(settings, 'x, TERMINAL.mudstandards.org')).toBe(
      'terminal.mudstandards.org',
    );
  });

  it('answers null when none fits, or the default when none is offered', () => {
    expect(chooseSubprotocol(settings, 'telnet.mudstandards.org')).toBeNull();
    expect(chooseSubprotocol(settings, undefined)).toBeNull();
    expect(chooseSubprotocol(settings, ' , ')).toBeNull();
    const withDefault = resolveWebSocket(
      { defaultSubprotocol: 'terminal.mudstandards.org' },
      'ws',
    );
    expect(chooseSubprotocol(withDefault, undefined)).toBe(
      'terminal.mudstandards.org',
    );
    // A client that offers only unknown ones is refused, not defaulted.
    expect(chooseSubprotocol(withDefault, 'chat')).toBeNull();
  });
});

describe('originAllowed', () => {
  it('allows listed origins (case and a trailing slash aside), refuses others', () => {
    const settings = resolveWebSocket(
      { origins: ['https://Mud.example/'] },
      'ws',
    );
    expect(originAllowed(settings, 'https://mud.example')).toBe(true);
    expect(originAllowed(settings, 'https://evil.example')).toBe(false);
    expect(originAllowed(settings, 'http://mud.example')).toBe(false);
    // Not a browser: no Origin to check.
    expect(originAllowed(settings, undefined)).toBe(true);
  });

  it('allows any origin without a list', () => {
    expect(
      originAllowed(resolveWebSocket({}, 'ws'), 'https://evil.example'),
    ).toBe(true);
  });
});

describe('parseGmcpText', () => {
  it('reads the package and the JSON data', () => {
    expect(parseGmcpText('Room.Info {"name":"Hall"}')).toEqual({
      package: 'Room.Info',
      data: { name: 'Hall' },
    });
    expect(parseGmcpText('Core.Ping')).toEqual({
      package: 'Core.Ping',
      data: undefined,
    });
    expect(parseGmcpText('Core.Ping   ')).toEqual({
      package: 'Core.Ping',
      data: undefined,
    });
  });

  it('answers an error for no package or invalid JSON', () => {
    expect(parseGmcpText(' {"a":1}')).toBeInstanceOf(Error);
    expect(parseGmcpText('Char.Vitals {"hp":')).toBeInstanceOf(Error);
  });
});
