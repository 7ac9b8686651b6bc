import { Injectable } from '@nestjs/common';
import type { ConnectionContext } from './connection-context.js';

/**
 * Options of {@link ConnectionRegistry.broadcast}.
 *
 * @publicApi
 */
export interface BroadcastOptions {
  /** A connection to leave out, usually the sender. */
  except?: ConnectionContext;
  /**
   * How to encode the text.
   * @default 'utf8'
   */
  encoding?: BufferEncoding;
}

/**
 * The live (admitted, not yet disconnecting) connections: the NestJS form of
 * `earwax_server.Server.connections`, without a mutable array to corrupt.
 * Inject it anywhere. A connection is in it before `on_connect` runs and out
 * of it before `on_disconnect` runs.
 *
 * @publicApi
 */
@Injectable()
export class ConnectionRegistry implements Iterable<ConnectionContext> {
  private readonly connections = new Map<string, ConnectionContext>();

  /** How many connections are live. */
  get size(): number {
    return this.connections.size;
  }

  /**
   * The live connection with this id.
   *
   * @param id A `ConnectionContext.id`.
   */
  get(id: string): ConnectionContext | undefined {
    return this.connections.get(id);
  }

  /**
   * Whether a connection with this id is live.
   *
   * @param id A `ConnectionContext.id`.
   */
  has(id: string): boolean {
    return this.connections.has(id);
  }

  /** The live connections, in the order they were admitted. */
  values(): IterableIterator<ConnectionContext> {
    return this.connections.values();
  }

  /** The live connections, in the order they were admitted. */
  [Symbol.iterator](): IterableIterator<ConnectionContext> {
    return this.connections.values();
  }

  /**
   * The live connections that satisfy `predicate`.
   *
   * @param predicate The test.
   */
  filter(predicate: (ctx: ConnectionContext) => boolean): ConnectionContext[] {
    const matches: ConnectionContext[] = [];
    for (const ctx of this.connections.values()) {
      if (predicate(ctx)) matches.push(ctx);
    }
    return matches;
  }

  /**
   * Sends one line to every live connection (but `except`), encoding it
   * once. Connections that are gone are skipped; nothing throws.
   *
   * @param text The line, without its terminator.
   * @param options `except`: a connection to leave out, usually the sender;
   *   `encoding`: how to encode `text` (default UTF-8).
   * @returns How many connections it was queued to.
   */
  broadcast(text: string, options: BroadcastOptions = {}): number {
    const { except, encoding = 'utf8' } = options;
    const line = Buffer.from(text + '\r\n', encoding);
    let sent = 0;
    for (const ctx of this.connections.values()) {
      if (ctx !== except && ctx.sendRaw(line)) sent++;
    }
    return sent;
  }

  /** @internal */
  add(ctx: ConnectionContext): void {
    this.connections.set(ctx.id, ctx);
  }

  /** @internal */
  delete(ctx: ConnectionContext): void {
    this.connections.delete(ctx.id);
  }
}
