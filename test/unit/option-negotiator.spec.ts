import { describe, expect, it } from '@jest/globals';
import {
  OptionNegotiator,
  type NegotiationPolicy,
  type NegotiationSink,
  type OptionState,
} from '../../lib/telnet/option-negotiator.js';

const WILL = 251;
const WONT = 252;
const DO = 253;
const DONT = 254;
const VERBS: Record<number, string> = {
  [WILL]: 'WILL',
  [WONT]: 'WONT',
  [DO]: 'DO',
  [DONT]: 'DONT',
};

/** Records what a negotiator sends and reports, as readable strings. */
class Recorder implements NegotiationSink {
  readonly sent: string[] = [];
  readonly changes: string[] = [];
  sendNegotiation(verb: number, option: number): void {
    this.sent.push(`${VERBS[verb] ?? verb} ${option}`);
  }
  optionChanged(
    option: number,
    side: 'local' | 'remote',
    enabled: boolean,
  ): void {
    this.changes.push(`${side} ${option} ${enabled ? 'on' : 'off'}`);
  }
  clear(): void {
    this.sent.length = 0;
    this.changes.length = 0;
  }
}

/** A policy that answers `accept` and records which options it was asked about. */
function policy(accept: boolean): NegotiationPolicy & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    acceptLocal: (option) => (asked.push(`local ${option}`), accept),
    acceptRemote: (option) => (asked.push(`remote ${option}`), accept),
  };
}

/** mulberry32: a small seeded PRNG, so random runs repeat exactly. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------------------
// RFC 1143 section 7, row by row, for both sides.

/** A state with its queue bit, as the RFC tables name them. */
type Label =
  | 'no'
  | 'yes'
  | 'wantno/empty'
  | 'wantno/opposite'
  | 'wantyes/empty'
  | 'wantyes/opposite';

interface SideUnderTest {
  readonly name: 'local' | 'remote';
  /** What the peer sends to agree / refuse for this side. */
  readonly peerOn: number;
  readonly peerOff: number;
  /** What we send to enable / disable this side. */
  readonly on: string;
  readonly off: string;
  readonly enableName: string;
  readonly disableName: string;
  enable(n: OptionNegotiator, option: number): boolean;
  disable(n: OptionNegotiator, option: number): boolean;
  state(n: OptionNegotiator, option: number): OptionState;
  queued(n: OptionNegotiator, option: number): boolean;
  otherState(n: OptionNegotiator, option: number): OptionState;
}

const LOCAL: SideUnderTest = {
  name: 'local',
  peerOn: DO,
  peerOff: DONT,
  on: 'WILL',
  off: 'WONT',
  enableName: 'enableLocal()',
  disableName: 'disableLocal()',
  enable: (n, o) => n.enableLocal(o),
  disable: (n, o) => n.disableLocal(o),
  state: (n, o) => n.localState(o),
  queued: (n, o) => n.localQueued(o),
  otherState: (n, o) => n.remoteState(o),
};

const REMOTE: SideUnderTest = {
  name: 'remote',
  peerOn: WILL,
  peerOff: WONT,
  on: 'DO',
  off: 'DONT',
  enableName: 'enableRemote()',
  disableName: 'disableRemote()',
  enable: (n, o) => n.enableRemote(o),
  disable: (n, o) => n.disableRemote(o),
  state: (n, o) => n.remoteState(o),
  queued: (n, o) => n.remoteQueued(o),
  otherState: (n, o) => n.localState(o),
};

/** The state and queue bit; a queue bit outside the want states shows too. */
function label(side: SideUnderTest, n: OptionNegotiator, option: number) {
  const state = side.state(n, option);
  const queued = side.queued(n, option);
  if (state === 'no' || state === 'yes')
    return queued ? `${state}/opposite` : state;
  return `${state}/${queued ? 'opposite' : 'empty'}`;
}

const X = 24;

/** A negotiator with `side` of option X brought to `from` through the API. */
function reach(side: SideUnderTest, from: Label, accept = true) {
  const sink = new Recorder();
  const pol = policy(accept);
  const n = new OptionNegotiator(sink, pol);
  const [state, queue] = from.split('/');
  if (from === 'yes' || state === 'wantno') {
    side.enable(n, X);
    n.receive(side.peerOn, X);
  }
  if (state === 'wantno') side.disable(n, X);
  if (state === 'wantyes') side.enable(n, X);
  if (queue === 'opposite') {
    if (state === 'wantno') side.enable(n, X);
    else side.disable(n, X);
  }
  expect(label(side, n, X)).toBe(from);
  sink.clear();
  pol.asked.length = 0;
  return { n, sink, pol };
}

type Event = 'peer-on' | 'peer-off' | 'enable' | 'disable';

interface Row {
  from: Label;
  event: Event;
  to: Label;
  /** What we send in reply: our enable verb, our disable verb, or nothing. */
  send?: 'on' | 'off';
  change?: 'on' | 'off';
  /** The policy's answer, for the one row that consults it. */
  accept?: boolean;
  /** Why, as RFC 1143 puts it. */
  note: string;
}

const ROWS: Row[] = [
  // Upon receipt of WILL (remote) / DO (local).
  { from: 'no', event: 'peer-on', accept: true, to: 'yes', send: 'on', change: 'on', note: 'agreed' }, // prettier-ignore
  { from: 'no', event: 'peer-on', accept: false, to: 'no', send: 'off', note: 'refused by policy' }, // prettier-ignore
  { from: 'yes', event: 'peer-on', to: 'yes', note: 'ignored' },
  { from: 'wantno/empty', event: 'peer-on', to: 'no', note: 'error: DONT answered by WILL' }, // prettier-ignore
  { from: 'wantno/opposite', event: 'peer-on', to: 'yes', change: 'on', note: 'error: DONT answered by WILL' }, // prettier-ignore
  { from: 'wantyes/empty', event: 'peer-on', to: 'yes', change: 'on', note: 'our request agreed' }, // prettier-ignore
  { from: 'wantyes/opposite', event: 'peer-on', to: 'wantno/empty', send: 'off', note: 'queued disable goes out' }, // prettier-ignore
  // Upon receipt of WONT (remote) / DONT (local).
  { from: 'no', event: 'peer-off', to: 'no', note: 'ignored' },
  { from: 'yes', event: 'peer-off', to: 'no', send: 'off', change: 'off', note: 'acknowledged' }, // prettier-ignore
  { from: 'wantno/empty', event: 'peer-off', to: 'no', note: 'our request agreed' }, // prettier-ignore
  { from: 'wantno/opposite', event: 'peer-off', to: 'wantyes/empty', send: 'on', note: 'queued enable goes out' }, // prettier-ignore
  { from: 'wantyes/empty', event: 'peer-off', to: 'no', note: 'our request refused' }, // prettier-ignore
  { from: 'wantyes/opposite', event: 'peer-off', to: 'no', note: 'refused into the wanted state' }, // prettier-ignore
  // If we decide to ask to enable.
  { from: 'no', event: 'enable', to: 'wantyes/empty', send: 'on', note: 'asks' }, // prettier-ignore
  { from: 'yes', event: 'enable', to: 'yes', note: 'error: already enabled' },
  { from: 'wantno/empty', event: 'enable', to: 'wantno/opposite', note: 'queued' }, // prettier-ignore
  { from: 'wantno/opposite', event: 'enable', to: 'wantno/opposite', note: 'error: already queued' }, // prettier-ignore
  { from: 'wantyes/empty', event: 'enable', to: 'wantyes/empty', note: 'error: already negotiating' }, // prettier-ignore
  { from: 'wantyes/opposite', event: 'enable', to: 'wantyes/empty', note: 'queued disable cancelled' }, // prettier-ignore
  // If we decide to ask to disable.
  { from: 'no', event: 'disable', to: 'no', note: 'error: already disabled' },
  { from: 'yes', event: 'disable', to: 'wantno/empty', send: 'off', change: 'off', note: 'asks' }, // prettier-ignore
  { from: 'wantno/empty', event: 'disable', to: 'wantno/empty', note: 'error: already negotiating' }, // prettier-ignore
  { from: 'wantno/opposite', event: 'disable', to: 'wantno/empty', note: 'queued enable cancelled' }, // prettier-ignore
  { from: 'wantyes/empty', event: 'disable', to: 'wantyes/opposite', note: 'queued' }, // prettier-ignore
  { from: 'wantyes/opposite', event: 'disable', to: 'wantyes/opposite', note: 'error: already queued' }, // prettier-ignore
];

function eventName(side: SideUnderTest, event: Event): string {
  switch (event) {
    case 'peer-on':
      return `received ${VERBS[side.peerOn]}`;
    case 'peer-off':
      return `received ${VERBS[side.peerOff]}`;
    case 'enable':
      return side.enableName;
    case 'disable':
      return side.disableName;
  }
}

describe('OptionNegotiator: RFC 1143 section 7 tables', () => {
  for (const side of [REMOTE, LOCAL]) {
    describe(`${side.name} side`, () => {
      for (const row of ROWS) {
        const sends = row.send ? `sends ${side[row.send]}` : 'sends nothing';
        const policyNote =
          row.accept === undefined ? '' : ` (policy ${row.accept})`;
        it(`${row.from} + ${eventName(side, row.event)}${policyNote} → ${row.to}, ${sends} (${row.note})`, () => {
          const { n, sink, pol } = reach(side, row.from, row.accept ?? true);
          let returned: boolean | undefined;
          if (row.event === 'peer-on') n.receive(side.peerOn, X);
          else if (row.event === 'peer-off') n.receive(side.peerOff, X);
          else if (row.event === 'enable') returned = side.enable(n, X);
          else returned = side.disable(n, X);

          expect(label(side, n, X)).toBe(row.to);
          expect(sink.sent).toEqual(row.send ? [`${side[row.send]} ${X}`] : []);
          expect(sink.changes).toEqual(
            row.change ? [`${side.name} ${X} ${row.change}`] : [],
          );
          if (returned !== undefined) expect(returned).toBe(!!row.send);
          // Only a request the peer starts is put to the policy.
          expect(pol.asked).toEqual(
            row.accept === undefined ? [] : [`${side.name} ${X}`],
          );
          // Nothing else moved: not the other side, not another option.
          expect(side.otherState(n, X)).toBe('no');
          const wanting = row.to.startsWith('want') ? [X] : [];
          expect(n.pending()).toEqual(
            side.name === 'local'
              ? { local: wanting, remote: [] }
              : { local: [], remote: wanting },
          );
          expect(side.state(n, X + 1)).toBe('no');
          expect(
            side.name === 'local' ? n.isLocalEnabled(X) : n.isRemoteEnabled(X),
          ).toBe(row.to === 'yes');
        });
      }
    });
  }
});

// ---------------------------------------------------------------------------

describe('OptionNegotiator', () => {
  it('refuses what the policy refuses: peer WILL X → DONT X, peer DO X → WONT X', () => {
    const sink = new Recorder();
    const pol = policy(false);
    const n = new OptionNegotiator(sink, pol);
    n.receive(WILL, 31);
    n.receive(DO, 1);
    expect(sink.sent).toEqual(['DONT 31', 'WONT 1']);
    expect(pol.asked).toEqual(['remote 31', 'local 1']);
    expect(sink.changes).toEqual([]);
    expect([n.remoteState(31), n.localState(1)]).toEqual(['no', 'no']);
    expect(n.pending()).toEqual({ local: [], remote: [] });
  });

  it('agrees to what the policy accepts and reports it once', () => {
    const sink = new Recorder();
    const n = new OptionNegotiator(sink, policy(true));
    n.receive(WILL, 31);
    n.receive(DO, 1);
    n.receive(WILL, 31); // a repeat confirms; it is not answered
    n.receive(DO, 1);
    expect(sink.sent).toEqual(['DO 31', 'WILL 1']);
    expect(sink.changes).toEqual(['remote 31 on', 'local 1 on']);
    expect([n.isRemoteEnabled(31), n.isLocalEnabled(1)]).toEqual([true, true]);
    expect([n.isLocalEnabled(31), n.isRemoteEnabled(1)]).toEqual([
      false,
      false,
    ]);
  });

  it('does not put the answer to our own request to the policy', () => {
    const sink = new Recorder();
    const pol = policy(false);
    const n = new OptionNegotiator(sink, pol);
    expect(n.enableRemote(31)).toBe(true);
    expect(n.enableLocal(1)).toBe(true);
    n.receive(WILL, 31);
    n.receive(DO, 1);
    expect(pol.asked).toEqual([]);
    expect(sink.sent).toEqual(['DO 31', 'WILL 1']);
    expect(sink.changes).toEqual(['remote 31 on', 'local 1 on']);
  });

  it('leaves an option the peer never answers in wantyes and lists it in pending()', () => {
    const sink = new Recorder();
    const n = new OptionNegotiator(sink, policy(true));
    expect(n.enableRemote(24)).toBe(true);
    expect(n.enableLocal(86)).toBe(true);
    // Unrelated traffic does not settle them, and asking again sends nothing.
    n.receive(WILL, 3);
    n.receive(DONT, 1);
    expect(n.enableRemote(24)).toBe(false);
    expect(n.enableLocal(86)).toBe(false);
    expect(sink.sent).toEqual(['DO 24', 'WILL 86', 'DO 3']);
    expect([n.remoteState(24), n.localState(86)]).toEqual([
      'wantyes',
      'wantyes',
    ]);
    expect([n.isRemoteEnabled(24), n.isLocalEnabled(86)]).toEqual([
      false,
      false,
    ]);
    expect(n.pending()).toEqual({ local: [86], remote: [24] });
    expect(sink.changes).toEqual(['remote 3 on']);
    // A late answer still settles it.
    n.receive(WILL, 24);
    expect(n.pending()).toEqual({ local: [86], remote: [] });
    expect(sink.changes).toEqual(['remote 3 on', 'remote 24 on']);
  });

  it('sends before it reports, and lets optionChanged call back in', () => {
    const sink = new Recorder();
    const reentrant: NegotiationSink = {
      sendNegotiation: (verb, option) => sink.sendNegotiation(verb, option),
      optionChanged: (option, side, enabled) => {
        sink.changes.push(`sent so far: ${sink.sent.join(', ')}`);
        sink.optionChanged(option, side, enabled);
        if (enabled) n.disableLocal(option);
      },
    };
    const n = new OptionNegotiator(reentrant, policy(true));
    n.receive(DO, 24);
    expect(sink.sent).toEqual(['WILL 24', 'WONT 24']);
    expect(sink.changes).toEqual([
      'sent so far: WILL 24',
      'local 24 on',
      'sent so far: WILL 24, WONT 24',
      'local 24 off',
    ]);
    expect(n.localState(24)).toBe('wantno');
  });

  it('ignores verbs other than WILL, WONT, DO and DONT', () => {
    const sink = new Recorder();
    const n = new OptionNegotiator(sink, policy(true));
    for (const verb of [0, 240, 250, 255, 256, -1]) n.receive(verb, 24);
    expect(sink.sent).toEqual([]);
    expect(sink.changes).toEqual([]);
    expect([n.localState(24), n.remoteState(24)]).toEqual(['no', 'no']);
  });

  it('accepts options 0 and 255 and rejects anything outside 0–255', () => {
    const sink = new Recorder();
    const n = new OptionNegotiator(sink, policy(true));
    n.receive(WILL, 0);
    n.receive(DO, 255);
    expect(sink.sent).toEqual(['DO 0', 'WILL 255']);
    for (const bad of [-1, 256, 1.5, Number.NaN]) {
      expect(() => n.receive(WILL, bad)).toThrow(RangeError);
      expect(() => n.enableLocal(bad)).toThrow(RangeError);
      expect(() => n.remoteState(bad)).toThrow(RangeError);
    }
    expect(sink.sent).toEqual(['DO 0', 'WILL 255']);
  });
});

// ---------------------------------------------------------------------------
// Two negotiators back to back.

/** One end of an in-memory connection: its sink queues what it sends. */
class Endpoint implements NegotiationSink {
  readonly negotiator: OptionNegotiator;
  /** Sent and not yet delivered, as flat verb, option pairs. */
  private readonly outbox: number[] = [];
  private head = 0;
  sent = 0;
  /** Every optionChanged, per "side option". */
  readonly reports = new Map<string, boolean[]>();

  constructor(policy: NegotiationPolicy) {
    this.negotiator = new OptionNegotiator(this, policy);
  }

  sendNegotiation(verb: number, option: number): void {
    this.outbox.push(verb, option);
    this.sent++;
  }

  optionChanged(
    option: number,
    side: 'local' | 'remote',
    enabled: boolean,
  ): void {
    const key = `${side} ${option}`;
    const list = this.reports.get(key) ?? [];
    list.push(enabled);
    this.reports.set(key, list);
  }

  get inFlight(): number {
    return (this.outbox.length - this.head) / 2;
  }

  /** Delivers the oldest message in flight to `peer`, in order, like TCP. */
  deliverTo(peer: Endpoint): void {
    const verb = this.outbox[this.head++];
    const option = this.outbox[this.head++];
    peer.negotiator.receive(verb, option);
  }
}

function connect(
  policyA: NegotiationPolicy = policy(true),
  policyB: NegotiationPolicy = policy(true),
) {
  const a = new Endpoint(policyA);
  const b = new Endpoint(policyB);
  const drain = (limit = 1000) => {
    for (let i = 0; i < limit && (a.inFlight > 0 || b.inFlight > 0); i++) {
      if (a.inFlight > 0) a.deliverTo(b);
      if (b.inFlight > 0) b.deliverTo(a);
    }
  };
  return { a, b, drain };
}

describe('OptionNegotiator back to back', () => {
  it('settles requests that cross on the wire without further messages', () => {
    const { a, b, drain } = connect();
    a.negotiator.enableLocal(24); // WILL 24
    b.negotiator.enableRemote(24); // DO 24, crossing it
    drain();
    expect(a.sent + b.sent).toBe(2);
    expect(a.negotiator.localState(24)).toBe('yes');
    expect(b.negotiator.remoteState(24)).toBe('yes');

    // Both change their minds twice while their disables cross.
    a.negotiator.disableLocal(24); // WONT 24
    a.negotiator.enableLocal(24); // queued
    b.negotiator.disableRemote(24); // DONT 24
    b.negotiator.enableRemote(24); // queued
    drain();
    expect(a.sent + b.sent).toBe(6); // WONT, DONT, then the queued WILL, DO
    expect(a.negotiator.localState(24)).toBe('yes');
    expect(b.negotiator.remoteState(24)).toBe('yes');
    expect(a.reports.get('local 24')).toEqual([true, false, true]);
    expect(b.reports.get('remote 24')).toEqual([true, false, true]);
  });

  it('always terminates and agrees, for random requests on both sides', () => {
    const options = [1, 3, 24, 31];
    let queuedSeen = 0;
    let enabledSeen = 0;
    for (let seed = 1; seed <= 300; seed++) {
      const random = prng(seed);
      // Policies answer at random, per call: agreement must not depend on them.
      const randomPolicy = (): NegotiationPolicy => ({
        acceptLocal: () => random() < 0.7,
        acceptRemote: () => random() < 0.7,
      });
      const { a, b } = connect(randomPolicy(), randomPolicy());
      let requests = 0;
      for (let step = 0; step < 200; step++) {
        const r = random();
        if (r < 0.45) {
          const end = random() < 0.5 ? a : b;
          const option = options[Math.floor(random() * options.length)];
          const n = end.negotiator;
          switch (Math.floor(random() * 4)) {
            case 0:
              n.enableLocal(option);
              break;
            case 1:
              n.disableLocal(option);
              break;
            case 2:
              n.enableRemote(option);
              break;
            default:
              n.disableRemote(option);
          }
          requests++;
          if (n.localQueued(option) || n.remoteQueued(option)) queuedSeen++;
        } else if (r < 0.725) {
          if (a.inFlight > 0) a.deliverTo(b);
        } else if (b.inFlight > 0) {
          b.deliverTo(a);
        }
      }
      // Drain in random order; a loop would run past the bound below.
      const bound = 2 * requests;
      for (let i = 0; i <= bound && (a.inFlight > 0 || b.inFlight > 0); i++) {
        if (b.inFlight === 0 || (a.inFlight > 0 && random() < 0.5))
          a.deliverTo(b);
        else b.deliverTo(a);
      }

      const where = `seed ${seed}`;
      // Each request sends at most one message, and each gets at most one reply.
      expect({ where, sent: a.sent + b.sent <= bound }).toEqual({
        where,
        sent: true,
      });
      expect({ where, inFlight: a.inFlight + b.inFlight }).toEqual({
        where,
        inFlight: 0,
      });
      for (const [x, y] of [
        [a, b],
        [b, a],
      ]) {
        const nx = x.negotiator;
        const ny = y.negotiator;
        expect({ where, pending: nx.pending() }).toEqual({
          where,
          pending: { local: [], remote: [] },
        });
        for (const option of options) {
          expect({ where, option, states: [nx.localState(option)] }).toEqual({
            where,
            option,
            states: [ny.remoteState(option)],
          });
          if (nx.isLocalEnabled(option)) enabledSeen++;
          for (const side of ['local', 'remote'] as const) {
            const reports = x.reports.get(`${side} ${option}`) ?? [];
            // Alternating, starting with "on": never the same value twice.
            const expected = reports.map((_, i) => i % 2 === 0);
            const enabled =
              side === 'local'
                ? nx.isLocalEnabled(option)
                : nx.isRemoteEnabled(option);
            expect({ where, side, option, reports, last: enabled }).toEqual({
              where,
              side,
              option,
              reports: expected,
              last: reports.length % 2 === 1,
            });
          }
        }
      }
    }
    // The runs did reach the queue and did end with options enabled.
    expect(queuedSeen).toBeGreaterThan(100);
    expect(enabledSeen).toBeGreaterThan(100);
  });
});

// ---------------------------------------------------------------------------

describe('OptionNegotiator against a hostile peer', () => {
  /** Feeds `count` messages, returning the most replies any one caused. */
  function flood(
    n: OptionNegotiator,
    sink: Recorder,
    count: number,
    verbAt: (i: number) => number,
  ): number {
    let most = 0;
    for (let i = 0; i < count; i++) {
      const before = sink.sent.length;
      n.receive(verbAt(i), 24);
      most = Math.max(most, sink.sent.length - before);
    }
    return most;
  }

  it('answers 10,000 alternating WILL/WONT at most once each, with a fixed state', () => {
    const sink = new Recorder();
    const n = new OptionNegotiator(sink, policy(true));
    const most = flood(n, sink, 10_000, (i) => (i % 2 ? WONT : WILL));
    expect(most).toBe(1);
    // Each WILL is agreed (DO) and each WONT acknowledged (DONT), per RFC 854.
    expect(sink.sent.length).toBe(10_000);
    expect(sink.sent.slice(0, 4)).toEqual(['DO 24', 'DONT 24', 'DO 24', 'DONT 24']); // prettier-ignore
    expect(sink.changes.length).toBe(10_000);
    expect(sink.changes.every((c, i) => c === `remote 24 ${i % 2 ? 'off' : 'on'}`)).toBe(true); // prettier-ignore
    expect(n.remoteState(24)).toBe('no');
    expect(n.remoteQueued(24)).toBe(false);
    expect(n.pending()).toEqual({ local: [], remote: [] });
  });

  it('answers only the WILLs it refuses, and never a WONT for a disabled option', () => {
    const sink = new Recorder();
    const n = new OptionNegotiator(sink, policy(false));
    const most = flood(n, sink, 10_000, (i) => (i % 2 ? WONT : WILL));
    expect(most).toBe(1);
    expect(sink.sent.length).toBe(5_000);
    expect(new Set(sink.sent)).toEqual(new Set(['DONT 24']));
    expect(sink.changes).toEqual([]);
    expect(n.remoteState(24)).toBe('no');
  });

  it('answers 10,000 alternating DO/DONT at most once each', () => {
    const sink = new Recorder();
    const n = new OptionNegotiator(sink, policy(true));
    const most = flood(n, sink, 10_000, (i) => (i % 2 ? DONT : DO));
    expect(most).toBe(1);
    expect(sink.sent.length).toBe(10_000);
    expect(sink.sent.slice(0, 2)).toEqual(['WILL 24', 'WONT 24']);
    expect(n.localState(24)).toBe('no');
    expect(n.pending()).toEqual({ local: [], remote: [] });
  });

  it('answers a repeated DO once and a repeated DONT once, however often they come', () => {
    const sink = new Recorder();
    const n = new OptionNegotiator(sink, policy(true));
    flood(n, sink, 10_000, () => DO);
    flood(n, sink, 10_000, () => DONT);
    expect(sink.sent).toEqual(['WILL 24', 'WONT 24']);
    expect(sink.changes).toEqual(['local 24 on', 'local 24 off']);
    // DONT for an option that is off already: nothing at all.
    flood(n, sink, 10_000, () => DONT);
    expect(sink.sent).toEqual(['WILL 24', 'WONT 24']);
  });

  it('refuses each DO or WILL of an option the policy does not want, without a change of state', () => {
    const sink = new Recorder();
    const n = new OptionNegotiator(sink, policy(false));
    const most = flood(n, sink, 1_000, (i) => (i % 2 ? WILL : DO));
    // RFC 1143: every request gets its answer, so a peer never waits; the
    // answer is no longer than the request, and the state never moves.
    expect(most).toBe(1);
    expect(sink.sent).toHaveLength(1_000);
    expect(new Set(sink.sent)).toEqual(new Set(['WONT 24', 'DONT 24']));
    expect(sink.changes).toEqual([]);
    expect([n.localState(24), n.remoteState(24)]).toEqual(['no', 'no']);
  });

  it('answers a repeated WILL once, however often it comes', () => {
    const sink = new Recorder();
    const n = new OptionNegotiator(sink, policy(true));
    flood(n, sink, 10_000, () => WILL);
    expect(sink.sent).toEqual(['DO 24']);
    expect(sink.changes).toEqual(['remote 24 on']);
  });

  it('sends nothing while our own request is answered wrongly over and over', () => {
    const sink = new Recorder();
    const n = new OptionNegotiator(sink, policy(true));
    n.enableRemote(24);
    n.receive(WILL, 24);
    n.disableRemote(24); // wantno: DONT sent
    sink.clear();
    // DONT answered by WILL: corrected to no, not answered; later WILLs are
    // new requests, answered once each, and the WONTs acknowledged.
    const most = flood(n, sink, 1_000, (i) => (i % 2 ? WONT : WILL));
    expect(most).toBe(1);
    expect(sink.sent.length).toBe(998);
    expect(n.remoteState(24)).toBe('no');
  });
});
