import { Injectable } from '@nestjs/common';
import { ConnectionContext, ConnectionGuard } from '../../../lib/index.js';
import { BlockListService } from './block-list.service.js';

/** Refuses connections from blocked addresses; the block list is injected. */
@Injectable()
export class BlockListGuard extends ConnectionGuard {
  constructor(private readonly blockList: BlockListService) {
    super();
  }

  override canConnect(ctx: ConnectionContext): boolean {
    return !this.blockList.isBlocked(ctx.hostname);
  }
}
