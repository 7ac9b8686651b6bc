/**
 * Where one side of an option stands (RFC 1143): `no`, `yes`, `wantno`,
 * `wantyes`. The want states also carry a queue bit, read through
 * {@link OptionNegotiator.localQueued} and {@link OptionNegotiator.remoteQueued}.
 * An option is enabled if and only if its state is `yes`.
 *
 * @publicApi
 */
export type OptionState = 'no' | 'yes' | 'wantno' | 'wantyes';

/**
 * What an {@link OptionNegotiator} needs from its connection.
 *
 * @internal
 */
export interface NegotiationSink {
  /**
   * Send `IAC <verb> <option>`. Must not call back into the negotiator
   * synchronously (queue or write it); {@link optionChanged} may.
   */
  sendNegotiation(verb: number, option: number): void;
  /**
   * An option changed state for good: `side` 'local' = we perform it (we
   * sent/agreed WILL), 'remote' = the peer performs it (we sent/agreed DO).
   * Called only on real transitions (enabled ⇔ state `yes`), after the
   * negotiation that caused it was sent, and never twice in a row with the
   * same `enabled` for one option and side.
   */
  optionChanged(
    option: number,
    side: 'local' | 'remote',
    enabled: boolean,
  ): void;
}

/**
 * Which options we agree to when the peer asks. Consulted only for requests
 * the peer starts, never for its answers to ours.
 *
 * @publicApi
 */
export interface NegotiationPolicy {
  /** Peer sent DO <option>: may we enable it on our side? */
  acceptLocal(option: number): boolean;
  /** Peer sent WILL <option>: do we want the peer to enable it? */
  acceptRemote(option: number): boolean;
}

// Private copies of the verbs; `telnet-codes.ts` holds the shared ones.
const WILL = 251;
const WONT = 252;
const DO = 253;
const DONT = 254;

// One byte per option and side: the RFC 1143 state in the low two bits, the
// queue bit (OPPOSITE; EMPTY is its absence) above it, and above that whether
// the last optionChanged said "enabled", so reports alternate by construction.
const NO = 0;
const YES = 1;
const WANTNO = 2;
const WANTYES = 3;
const STATE = 0b011;
const OPPOSITE = 0b100;
const REPORTED = 0b1000;

const STATE_NAMES: readonly OptionState[] = ['no', 'yes', 'wantno', 'wantyes'];

/** No negotiation to send. */
const NONE = -1;

/** One side of every option: `us` (local) or `him` (remote) in RFC 1143. */
interface Side {
  readonly states: Uint8Array;
  readonly name: 'local' | 'remote';
  /** What we send to enable / disable this side: WILL/WONT or DO/DONT. */
  readonly enable: number;
  readonly disable: number;
}

/**
 * Telnet option negotiation by the Q method of RFC 1143, section 7: pure
 * state, no I/O. It never answers a message that merely confirms the current
 * state, and it queues at most one opposite request behind a negotiation in
 * flight, so two negotiators (or one and any peer) cannot loop: each received
 * message causes at most one reply.
 *
 * A peer that breaks the protocol ("DONT answered by WILL" and the like) is
 * handled as the RFC says: the state is corrected and nothing is sent, since
 * a peer known to be non-compliant should not be trusted with more messages.
 *
 * State is two 256-byte arrays, whatever the peer sends.
 *
 * @internal
 */
export class OptionNegotiator {
  private readonly us: Side = {
    states: new Uint8Array(256),
    name: 'local',
    enable: WILL,
    disable: WONT,
  };
  private readonly him: Side = {
    states: new Uint8Array(256),
    name: 'remote',
    enable: DO,
    disable: DONT,
  };

  constructor(
    private readonly sink: NegotiationSink,
    private readonly policy: NegotiationPolicy,
  ) {}

  /**
   * We want to enable an option on our side: sends WILL from `no`; queues
   * the request behind a disable in flight (`wantno`), or cancels a queued
   * disable (`wantyes` with the queue bit).
   *
   * @returns Whether a negotiation was sent; false when the request was
   * queued or cancelled a queued one (see {@link localState}) or the option
   * is already enabled or being enabled.
   * @throws {RangeError} If `option` is not an integer in 0–255.
   */
  enableLocal(option: number): boolean {
    return this.request(this.us, checkOption(option), true);
  }

  /**
   * We want to stop performing an option: sends WONT from `yes`, queueing
   * or cancelling as {@link enableLocal} does. The option counts as disabled
   * as soon as WONT is sent.
   *
   * @returns Whether a negotiation was sent.
   * @throws {RangeError} If `option` is not an integer in 0–255.
   */
  disableLocal(option: number): boolean {
    return this.request(this.us, checkOption(option), false);
  }

  /**
   * We want the peer to enable an option: sends DO from `no`, queueing or
   * cancelling as {@link enableLocal} does.
   *
   * @returns Whether a negotiation was sent.
   * @throws {RangeError} If `option` is not an integer in 0–255.
   */
  enableRemote(option: number): boolean {
    return this.request(this.him, checkOption(option), true);
  }

  /**
   * We want the peer to stop performing an option: sends DONT from `yes`,
   * queueing or cancelling as {@link enableLocal} does. The option counts as
   * disabled as soon as DONT is sent.
   *
   * @returns Whether a negotiation was sent.
   * @throws {RangeError} If `option` is not an integer in 0–255.
   */
  disableRemote(option: number): boolean {
    return this.request(this.him, checkOption(option), false);
  }

  /**
   * Handles a received `IAC WILL/WONT/DO/DONT <option>`, replying through
   * the sink at most once. Other verbs are ignored.
   *
   * @throws {RangeError} If `option` is not an integer in 0–255.
   */
  receive(verb: number, option: number): void {
    checkOption(option);
    switch (verb) {
      case WILL:
        return this.answer(this.him, option, true);
      case WONT:
        return this.answer(this.him, option, false);
      case DO:
        return this.answer(this.us, option, true);
      case DONT:
        return this.answer(this.us, option, false);
    }
  }

  /** Whether we perform `option` (state `yes`). */
  isLocalEnabled(option: number): boolean {
    return (this.us.states[checkOption(option)] & STATE) === YES;
  }

  /** Whether the peer performs `option` (state `yes`). */
  isRemoteEnabled(option: number): boolean {
    return (this.him.states[checkOption(option)] & STATE) === YES;
  }

  /** Where our side of `option` stands (`us` in RFC 1143). */
  localState(option: number): OptionState {
    return STATE_NAMES[this.us.states[checkOption(option)] & STATE];
  }

  /** Where the peer's side of `option` stands (`him` in RFC 1143). */
  remoteState(option: number): OptionState {
    return STATE_NAMES[this.him.states[checkOption(option)] & STATE];
  }

  /**
   * Whether the opposite request is queued behind the negotiation of our
   * side of `option` in flight (`usq` = OPPOSITE). Always false outside the
   * want states.
   */
  localQueued(option: number): boolean {
    return (this.us.states[checkOption(option)] & OPPOSITE) !== 0;
  }

  /** As {@link localQueued}, for the peer's side (`himq` = OPPOSITE). */
  remoteQueued(option: number): boolean {
    return (this.him.states[checkOption(option)] & OPPOSITE) !== 0;
  }

  /**
   * Options we asked about and the peer has not answered yet (state `wantno`
   * or `wantyes`), in ascending order, for "never answers" handling.
   */
  pending(): { local: number[]; remote: number[] } {
    return { local: waiting(this.us.states), remote: waiting(this.him.states) };
  }

  /** Our own request to enable or disable one side (RFC 1143 "If we decide to ask"). */
  private request(side: Side, option: number, enable: boolean): boolean {
    const current = side.states[option];
    const state = current & STATE;
    const queued = (current & OPPOSITE) !== 0;
    if (enable) {
      switch (state) {
        case NO:
          return this.commit(side, option, WANTYES, side.enable);
        case WANTNO:
          // Wait for the disable to be answered, then ask again.
          if (!queued) this.commit(side, option, WANTNO | OPPOSITE, NONE);
          return false;
        case WANTYES:
          // Drop a queued disable: the enable in flight is what we want.
          if (queued) this.commit(side, option, WANTYES, NONE);
          return false;
      }
      return false; // YES: already enabled.
    }
    switch (state) {
      case YES:
        return this.commit(side, option, WANTNO, side.disable);
      case WANTYES:
        if (!queued) this.commit(side, option, WANTYES | OPPOSITE, NONE);
        return false;
      case WANTNO:
        if (queued) this.commit(side, option, WANTNO, NONE);
        return false;
    }
    return false; // NO: already disabled.
  }

  /**
   * The peer's WILL/DO (`agrees`) or WONT/DONT for one side (RFC 1143 "Upon
   * receipt of").
   */
  private answer(side: Side, option: number, agrees: boolean): void {
    const current = side.states[option];
    const state = current & STATE;
    const queued = (current & OPPOSITE) !== 0;
    if (agrees) {
      switch (state) {
        case NO: {
          const accept =
            side === this.us
              ? this.policy.acceptLocal(option)
              : this.policy.acceptRemote(option);
          if (accept) this.commit(side, option, YES, side.enable);
          else this.commit(side, option, NO, side.disable);
          return;
        }
        case WANTNO:
          // Error: DONT answered by WILL. Correct the state, send nothing.
          this.commit(side, option, queued ? YES : NO, NONE);
          return;
        case WANTYES:
          if (queued) this.commit(side, option, WANTNO, side.disable);
          else this.commit(side, option, YES, NONE);
          return;
      }
      return; // YES: a confirmation of what we already have; never answered.
    }
    switch (state) {
      case YES:
        // RFC 854: a WONT/DONT for an enabled option must be acknowledged.
        this.commit(side, option, NO, side.disable);
        return;
      case WANTNO:
        if (queued) this.commit(side, option, WANTYES, side.enable);
        else this.commit(side, option, NO, NONE);
        return;
      case WANTYES:
        // Refused: a queued disable is satisfied already, and RFC 1143 does
        // not queue a second enable behind the refusal.
        this.commit(side, option, NO, NONE);
        return;
    }
    // NO: already disabled; never answered.
  }

  /**
   * Stores the new state and queue bit, sends `verb` (unless NONE), then
   * reports a change of "enabled". State is written before any callback so
   * a sink that calls back in sees it.
   *
   * @returns Whether a negotiation was sent.
   */
  private commit(
    side: Side,
    option: number,
    stateAndQueue: number,
    verb: number,
  ): boolean {
    const states = side.states;
    states[option] = (states[option] & REPORTED) | stateAndQueue;
    if (verb !== NONE) this.sink.sendNegotiation(verb, option);
    const current = states[option];
    const enabled = (current & STATE) === YES;
    if (enabled !== ((current & REPORTED) !== 0)) {
      states[option] = current ^ REPORTED;
      this.sink.optionChanged(option, side.name, enabled);
    }
    return verb !== NONE;
  }
}

function checkOption(option: number): number {
  if (!Number.isInteger(option) || option < 0 || option > 255) {
    throw new RangeError(
      `A telnet option is an integer in 0–255, got ${option}`,
    );
  }
  return option;
}

function waiting(states: Uint8Array): number[] {
  const options: number[] = [];
  for (let option = 0; option < 256; option++) {
    if ((states[option] & STATE) >= WANTNO) options.push(option);
  }
  return options;
}
