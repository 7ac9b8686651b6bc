import type {
  EarwaxMessages,
  FramingMode,
  OverlongLinePolicy,
} from '../interfaces/connection-options.interface.js';
import type { InputRate } from '../limits/input-rate-limiter.js';
import type { TelnetSettings } from '../telnet/telnet-session.js';

/**
 * What a connection reads of its transport's options, checked and with
 * defaults applied. A connection keeps the settings it was accepted under.
 *
 * @internal
 */
export interface ConnectionSettings {
  readonly framing: FramingMode;
  readonly encoding: BufferEncoding | undefined;
  readonly maxLineLength: number;
  readonly overlongLinePolicy: OverlongLinePolicy;
  readonly deliverPartialLineOnEnd: boolean;
  readonly maxOutputBuffer: number;
  readonly writeTimeout: number;
  readonly lingerTimeout: number;
  readonly inputRate: InputRate | null;
  readonly sniffProtocols: boolean;
  readonly messages: EarwaxMessages;
  readonly maxQueuedEvents: number;
  readonly logConnections: boolean;
}

/**
 * What a connection knows of the listener it came in on.
 *
 * @internal
 */
export interface ListenerInfo {
  readonly name: string;
  /** Whether the listener speaks TLS (a handshake follows admission). */
  readonly isTls: boolean;
  /** The listener's telnet settings; `null` for a raw listener. */
  readonly telnet: TelnetSettings | null;
}
