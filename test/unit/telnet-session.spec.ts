import { afterEach, describe, expect, it, jest } from '@jest/globals';
import type { Logger } from '@nestjs/common';
import {
  TelnetCommand,
  TelnetOption,
  describeOption,
} from '../../lib/telnet/telnet-codes.js';
import {
  TelnetParser,
  negotiation,
  subnegotiation,
  type TelnetSink,
} from '../../lib/telnet/telnet-parser.js';
import {
  TelnetSession,
  answerAllowanceOf,
  type TelnetSessionSink,
  type TelnetSettings,
} from '../../lib/telnet/telnet-session.js';

const { IAC, WILL, WONT, DO, DONT, SB, NOP } = TelnetCommand;
const { ECHO, SGA, TTYPE, NAWS, GMCP, CHARSET, EOR, MSSP, MCCP2 } =
  TelnetOption;
const VERBS: Record<number, string> = {
  [WILL]: 'WILL',
  [WONT]: 'WONT',
  [DO]: 'DO',
  [DONT]: 'DONT',
};

const SETTINGS: TelnetSettings = {
  ttype: true,
  naws: true,
  gmcp: true,
  charset: true,
  eor: true,
  mssp: { name: 'Test' },
  mccp2: true,
  maxSubnegotiationLength: 8192,
  msspInterval: 60_000,
  answerAllowance: answerAllowanceOf({ name: 'Test' }),
};

/** Reads what the session wrote as `WILL ECHO`, `SB MSSP`, ... */
class Reader implements TelnetSink {
  readonly items: string[] = [];
  onTelnetData(): void {
    this.items.push('data');
  }
  onTelnetCommand(command: number): void {
    this.items.push(`IAC ${command}`);
  }
  onTelnetNegotiation(verb: number, option: number): void {
    this.items.push(`${VERBS[verb]} ${describeOption(option)}`);
  }
  onTelnetSubnegotiation(option: number): void {
    this.items.push(`SB ${describeOption(option)}`);
  }
  onTelnetSubnegotiationError(option: number, reason: string): void {
    this.items.push(`error ${option} ${reason}`);
  }
}

/** A host that records what the session sends and asks. */
class Host implements TelnetSessionSink {
  readonly written: Buffer[] = [];
  readonly events: Array<[string, unknown]> = [];
  /** What allow() answers. */
  allowing = true;
  allowed = 0;
  overBudgetCalls = 0;
  compressions = 0;
  readonly logger = {
    warn: () => undefined,
    debug: () => undefined,
  } as unknown as Logger;

  data(): void {
    // Lines are not what these tests are about.
  }
  allow(): boolean {
    this.allowed++;
    return this.allowing;
  }
  overBudget(): void {
    this.overBudgetCalls++;
  }
  emit(event: string, payload: unknown): void {
    this.events.push([event, payload]);
  }
  msspStatus(): Record<string, string> {
    return { PLAYERS: '1', UPTIME: '1700000000' };
  }
  write(bytes: Buffer): boolean {
    this.written.push(Buffer.from(bytes));
    return true;
  }
  startCompression(): void {
    this.compressions++;
  }

  /** Bytes written so far. */
  get bytes(): number {
    return this.written.reduce((sum, b) => sum + b.length, 0);
  }

  /** Everything written since the last call, described. */
  take(): string[] {
    const reader = new Reader();
    new TelnetParser(1 << 20).push(Buffer.concat(this.written), reader);
    this.written.length = 0;
    return reader.items;
  }
}

function session(settings: Partial<TelnetSettings> = {}) {
  const host = new Host();
  const s = new TelnetSession({ ...SETTINGS, ...settings }, host);
  s.start();
  host.take();
  return { s, host };
}

const neg = (verb: number, option: number) => negotiation(verb, option);

afterEach(() => {
  jest.useRealTimers();
});

describe('TelnetSession: what it agrees to', () => {
  it('refuses an unsolicited DO ECHO: the game has not asked to hide input', () => {
    const { s, host } = session();
    s.push(neg(DO, ECHO));
    expect(host.take()).toEqual(['WONT ECHO']);
    expect(s.echoHidden).toBe(false);
    // Asked again, refused again (RFC 1143: each request gets its answer).
    s.push(neg(DO, ECHO));
    expect(host.take()).toEqual(['WONT ECHO']);
    expect(s.echoHidden).toBe(false);
  });

  it('offers ECHO itself for a password, and takes it back, as ctx.echo() asks', () => {
    const { s, host } = session();
    expect(s.setEcho(false)).toBe(true);
    expect(host.take()).toEqual(['WILL ECHO']);
    s.push(neg(DO, ECHO)); // the client agrees: no answer
    expect(host.take()).toEqual([]);
    expect(s.echoHidden).toBe(true);
    s.push(neg(DO, ECHO)); // a confirmation: no answer
    expect(host.take()).toEqual([]);

    // The client turns it off mid-password and asks again: the game still
    // wants input hidden, so it is agreed.
    s.push(neg(DONT, ECHO));
    expect(host.take()).toEqual(['WONT ECHO']);
    s.push(neg(DO, ECHO));
    expect(host.take()).toEqual(['WILL ECHO']);
    expect(s.echoHidden).toBe(true);

    expect(s.setEcho(true)).toBe(true);
    expect(host.take()).toEqual(['WONT ECHO']);
    s.push(neg(DONT, ECHO));
    expect(host.take()).toEqual([]);
    expect(s.echoHidden).toBe(false);
    // Password over: a client's own DO ECHO is refused again.
    s.push(neg(DO, ECHO));
    expect(host.take()).toEqual(['WONT ECHO']);
    expect(s.echoHidden).toBe(false);
  });

  it('refuses DO for every option the server does not perform, and WILL for every one it did not ask for', () => {
    const { s, host } = session({ mccp2: false });
    // What it offered at start: a DO or WILL for those agrees, unanswered.
    const offeredLocal: number[] = [GMCP, CHARSET, EOR, MSSP];
    const offeredRemote: number[] = [TTYPE, NAWS];
    const agreed: string[] = [];
    for (let option = 0; option < 256; option++) {
      if (!offeredLocal.includes(option)) {
        s.push(neg(DO, option));
        const answer = host.take();
        if (answer[0] === `WILL ${describeOption(option)}`) {
          agreed.push(answer[0]);
        } else expect(answer).toEqual([`WONT ${describeOption(option)}`]);
      }
      if (!offeredRemote.includes(option)) {
        s.push(neg(WILL, option));
        const answer = host.take();
        if (answer[0] === `DO ${describeOption(option)}`) {
          agreed.push(answer[0]);
        } else expect(answer).toEqual([`DONT ${describeOption(option)}`]);
      }
    }
    // Only SGA, which prompts honour (no GA once it is on).
    expect(agreed).toEqual(['WILL SGA']);
    expect(s.echoHidden).toBe(false);
  });

  it('agrees to the options it offers, when turned off and asked again', () => {
    const { s, host } = session({ mccp2: false });
    for (const option of [GMCP, CHARSET, EOR, MSSP]) {
      s.push(Buffer.concat([neg(DO, option), neg(DONT, option)]));
    }
    for (const option of [TTYPE, NAWS]) {
      s.push(Buffer.concat([neg(WILL, option), neg(WONT, option)]));
    }
    host.take();
    s.push(Buffer.concat([neg(DO, GMCP), neg(DO, EOR), neg(WILL, NAWS)]));
    expect(host.take()).toEqual(['WILL GMCP', 'WILL EOR', 'DO NAWS']);
  });

  it('refuses what the settings turn off', () => {
    const { s, host } = session({
      gmcp: false,
      charset: false,
      eor: false,
      mssp: false,
      mccp2: false,
      ttype: false,
      naws: false,
    });
    const asks = [GMCP, CHARSET, EOR, MSSP, MCCP2].map((o) => neg(DO, o));
    s.push(Buffer.concat([...asks, neg(WILL, TTYPE), neg(WILL, NAWS)]));
    expect(host.take()).toEqual([
      'WONT GMCP',
      'WONT CHARSET',
      'WONT EOR',
      'WONT MSSP',
      'WONT MCCP2',
      'DONT TTYPE',
      'DONT NAWS',
    ]);
  });
});

describe('TelnetSession: answers to repeated requests', () => {
  it('answers a repeated DO or WILL only when the state changes', () => {
    const { s, host } = session();
    const repeated = Buffer.concat(
      Array.from({ length: 100 }, () =>
        Buffer.concat([neg(DO, SGA), neg(DO, GMCP), neg(WILL, NAWS)]),
      ),
    );
    s.push(repeated);
    // GMCP and NAWS were offered: agreed without a reply. SGA: one WILL.
    expect(host.take()).toEqual(['WILL SGA']);
    s.push(repeated);
    expect(host.take()).toEqual([]);
    const off = Buffer.concat(
      Array.from({ length: 100 }, () => Buffer.concat([neg(DONT, GMCP)])),
    );
    s.push(off);
    expect(host.take()).toEqual(['WONT GMCP']);
  });

  it('sends the MSSP table once per interval, however often DO/DONT MSSP toggles', () => {
    jest.useFakeTimers({ now: 1_000_000 });
    const { s, host } = session();
    const toggles = Buffer.concat(
      Array.from({ length: 1000 }, () =>
        Buffer.concat([neg(DO, MSSP), neg(DONT, MSSP)]),
      ),
    );
    s.push(toggles);
    const first = host.take();
    // Agreed (to our offer) with the table; turned off (WONT); asked again
    // within the interval: refused, each time.
    expect(first.slice(0, 3)).toEqual(['SB MSSP', 'WONT MSSP', 'WONT MSSP']);
    expect(first.filter((i) => i === 'SB MSSP')).toHaveLength(1);
    expect(first.filter((i) => i === 'WONT MSSP')).toHaveLength(1000);
    expect(first).toHaveLength(1001);

    jest.setSystemTime(1_000_000 + 59_999);
    s.push(neg(DO, MSSP));
    expect(host.take()).toEqual(['WONT MSSP']);
    jest.setSystemTime(1_000_000 + 60_000);
    s.push(Buffer.concat([neg(DO, MSSP), neg(DONT, MSSP), neg(DO, MSSP)]));
    expect(host.take()).toEqual([
      'WILL MSSP',
      'SB MSSP',
      'WONT MSSP',
      'WONT MSSP',
    ]);
  });

  it('asks for the charset once and starts MCCP2 once per connection', () => {
    const { s, host } = session();
    const toggles = Buffer.concat(
      Array.from({ length: 50 }, () =>
        Buffer.concat([
          neg(DO, CHARSET),
          neg(DONT, CHARSET),
          neg(DO, MCCP2),
          neg(DONT, MCCP2),
        ]),
      ),
    );
    s.push(toggles);
    const items = host.take();
    expect(items.filter((i) => i === 'SB CHARSET')).toHaveLength(1);
    expect(items.filter((i) => i === 'SB MCCP2')).toHaveLength(1);
    expect(host.compressions).toBe(1);
    // Once compressing, MCCP2 is not agreed to again.
    expect(items.filter((i) => i === 'WILL MCCP2')).toHaveLength(0);
  });
});

describe('TelnetSession: input rate and answer budget', () => {
  it('takes one event per command, negotiation and subnegotiation, and acts on none the host drops', () => {
    const { s, host } = session();
    host.allowing = false;
    s.push(
      Buffer.concat([
        neg(DO, ECHO),
        neg(DO, SGA),
        neg(WILL, NAWS),
        Buffer.of(IAC, NOP),
        subnegotiation(NAWS, Buffer.of(0, 80, 0, 24)),
        subnegotiation(GMCP, 'Core.Ping'),
        Buffer.of(IAC, SB, GMCP, IAC, WILL, ECHO),
      ]),
    );
    // 3 negotiations, NOP, 2 subnegotiations, a broken one and the WILL
    // after it.
    expect(host.allowed).toBe(8);
    expect(host.take()).toEqual([]);
    expect(host.events).toEqual([]);
    expect(s.windowSize).toBeUndefined();
  });

  it('drops an answer past twice the input plus the allowance, and reports it once', () => {
    // No allowance: IAC DO MCCP2 (3 bytes) pays for 6, but WILL MCCP2 and
    // the subnegotiation that starts compression take 8.
    const { s, host } = session({ answerAllowance: 0 });
    s.push(neg(DONT, MCCP2)); // refuses the offer: no answer
    s.push(neg(DO, MCCP2));
    expect(host.take()).toEqual(['WILL MCCP2']);
    expect(host.compressions).toBe(0);
    expect(host.overBudgetCalls).toBe(1);
    s.push(neg(DO, 99));
    expect(host.overBudgetCalls).toBe(1);
  });

  it('does not send an MSSP table past the budget, and refuses DO MSSP instead of going past it', () => {
    jest.useFakeTimers({ now: 1_000_000 });
    const warnings: string[] = [];
    const { s, host } = session({
      answerAllowance: 64,
      mssp: { name: 'x'.repeat(200) },
    });
    host.logger.warn = (message: string) => void warnings.push(message);
    s.push(neg(DO, MSSP)); // agrees to the offer; the table does not fit
    expect(host.take()).toEqual([]);
    expect(warnings).toEqual([
      expect.stringMatching(/^MSSP table of 2\d\d bytes not sent/),
    ]);
    s.push(neg(DONT, MSSP));
    expect(host.take()).toEqual(['WONT MSSP']);
    jest.setSystemTime(1_000_000 + 120_000);
    s.push(neg(DO, MSSP));
    expect(host.take()).toEqual(['WONT MSSP']);
    expect(host.overBudgetCalls).toBe(0);
  });

  it('never writes more than twice the input plus the allowance, for any sequence of requests', () => {
    const allowance = 256;
    const { s, host } = session({ answerAllowance: allowance });
    let input = 0;
    let output = 0;
    // Windows start at every chunk: what was written since is bounded by
    // twice what was read since, plus the allowance.
    const reads: number[] = [];
    const writes: number[] = [];
    let seed = 7;
    const random = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x7fffffff;
    };
    const options = [ECHO, SGA, TTYPE, NAWS, GMCP, CHARSET, EOR, MSSP, 99];
    for (let chunk = 0; chunk < 500; chunk++) {
      const parts: Buffer[] = [];
      for (let i = 0; i < 1 + Math.floor(random() * 20); i++) {
        const verb = [WILL, WONT, DO, DONT][Math.floor(random() * 4)];
        parts.push(neg(verb, options[Math.floor(random() * options.length)]));
      }
      const bytes = Buffer.concat(parts);
      s.push(bytes);
      input += bytes.length;
      output += host.bytes;
      host.written.length = 0;
      reads.push(input);
      writes.push(output);
    }
    for (let from = 0; from < reads.length; from++) {
      const before = from === 0 ? 0 : reads[from - 1];
      const wrote = from === 0 ? 0 : writes[from - 1];
      for (let to = from; to < reads.length; to += 37) {
        expect(writes[to] - wrote).toBeLessThanOrEqual(
          2 * (reads[to] - before) + allowance,
        );
      }
    }
    // A client that follows the protocol never comes near it.
    expect(host.overBudgetCalls).toBe(0);
  });

  it('is not charged for what the server asks itself', () => {
    // No allowance and no input: nothing input caused could be written.
    const { s, host } = session({ answerAllowance: 0 });
    expect(s.setEcho(false)).toBe(true);
    expect(host.take()).toEqual(['WILL ECHO']);
    expect(host.overBudgetCalls).toBe(0);
  });

  it('batches the small answers of a chunk into a few writes, flushed before data and events go on', () => {
    const { s, host } = session();
    s.push(
      Buffer.concat(Array.from({ length: 100 }, (_, i) => neg(DO, 100 + i))),
    );
    expect(host.written).toHaveLength(1);
    expect(host.take()).toHaveLength(100);
    // 3,000 refusals (9,000 bytes; the DONTs are not answered): a write
    // per 4,000 bytes or so, not one per answer.
    s.push(
      Buffer.concat(
        Array.from({ length: 3000 }, (_, i) =>
          Buffer.concat([neg(DO, i % 2 ? 100 : 101), neg(DONT, 100)]),
        ),
      ),
    );
    expect(host.written.length).toBeLessThanOrEqual(4);
    expect(host.take()).toHaveLength(3000);
    // Answers before a line, and before an event, go out before it does.
    const order: string[] = [];
    host.data = () => void order.push(`data after ${host.written.length}`);
    host.emit = (event) => void order.push(`${event} after ${host.written.length}`); // prettier-ignore
    s.push(
      Buffer.concat([
        neg(DO, 120),
        Buffer.from('look\r\n'),
        neg(DO, 121),
        neg(WILL, NAWS),
        subnegotiation(NAWS, Buffer.of(0, 80, 0, 24)),
      ]),
    );
    expect(order).toEqual(['data after 1', 'on_resize after 2']);
    expect(host.take()).toEqual(['WONT option 120', 'WONT option 121']);
  });
});

describe('answerAllowanceOf', () => {
  it('holds the static MSSP table with room to spare', () => {
    const mssp = { name: 'Game', variables: { DESC: 'd'.repeat(8192) } };
    const table = subnegotiation(MSSP, `\x01NAME\x02Game\x01DESC\x02${'d'.repeat(8192)}`); // prettier-ignore
    expect(answerAllowanceOf(mssp)).toBeGreaterThan(table.length + 1024);
    expect(answerAllowanceOf(false)).toBeGreaterThan(1024);
  });
});
