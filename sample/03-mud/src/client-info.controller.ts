import { Controller } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import {
  EarwaxEvent,
  type GmcpMessage,
  type TerminalInfo,
  type WindowSize,
} from '../../../lib/index.js';
import type { Player } from './mud-session.js';

/**
 * Remembers what the client tells about itself through telnet: its name
 * (GMCP `Core.Hello`), its terminal (TTYPE / MTTS) and its window size
 * (NAWS). These events can come at any time, logged in or not; `stats`
 * shows them.
 */
@Controller()
export class ClientInfoController {
  @EarwaxEvent('on_gmcp')
  gmcp(@Payload() message: GmcpMessage, @Ctx() player: Player): void {
    if (message.package.toLowerCase() !== 'core.hello') return;
    const { client, version } = (message.data ?? {}) as Record<string, unknown>;
    if (typeof client !== 'string' || client === '') return;
    player.data.client =
      typeof version === 'string' && version !== ''
        ? `${client} ${version}`
        : client;
    player.logger.log(`Client: ${player.data.client} (GMCP Core.Hello).`);
  }

  @EarwaxEvent('on_terminal')
  terminal(@Payload() info: TerminalInfo, @Ctx() player: Player): void {
    player.data.terminal = info;
    player.logger.log(
      `Terminal: ${info.client ?? '?'}, ${info.terminal ?? '?'}, MTTS ${info.mtts ?? '?'} (TTYPE).`,
    );
  }

  @EarwaxEvent('on_resize')
  resize(@Payload() size: WindowSize, @Ctx() player: Player): void {
    player.data.window = size;
  }
}
