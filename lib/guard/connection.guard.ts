import { Injectable } from '@nestjs/common';
import type { ConnectionContext } from '../connection/connection-context.js';

/**
 * Decides whether a new connection is admitted: the NestJS form of
 * `earwax_server.Server.can_connect`. Extend it, inject what it needs (a
 * block-list service, a config service, a repository), and provide it
 * through `EarwaxModule.forRoot({ guard: MyGuard })` or
 * `{ provide: ConnectionGuard, useClass: MyGuard }`.
 *
 * It runs after the kernel accepts the socket and before anything is read
 * from it. A refused connection gets `on_block` (whose handlers may still send
 * a message) and is closed; it never gets `on_connect` or `on_disconnect` and
 * never enters the registry. A guard that throws or rejects refuses the
 * connection and the error is logged (fail closed).
 *
 * @example
 * ```ts
 * @Injectable()
 * export class BlockListGuard extends ConnectionGuard {
 *   constructor(private readonly bans: BanService) { super(); }
 *   override canConnect(ctx: ConnectionContext) {
 *     return !this.bans.isBanned(ctx.hostname);
 *   }
 * }
 * ```
 *
 * @publicApi
 */
@Injectable()
export abstract class ConnectionGuard {
  /**
   * Whether `ctx` may connect. The default admits everyone.
   *
   * @param ctx The connection asking to be admitted (state `pending`).
   */
  canConnect(ctx: ConnectionContext): boolean | Promise<boolean>;
  canConnect(): boolean | Promise<boolean> {
    return true;
  }
}
