import { Controller } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import {
  type BanEntry,
  BlockListError,
  type BlockReason,
  BlockListService,
  ConnectionContext,
  ConnectionRegistry,
  EarwaxEvent,
  EVENT_HANDLED,
  EVENT_UNHANDLED,
} from '../../../lib/index.js';
import { AdminService } from './admin.service.js';
import { nameOf, type Player } from './chat-session.js';
import { parseCommand } from './command.js';

/**
 * `/admin`, `/ban`, `/unban` and `/bans`, on the library's `BlockListService`:
 * the transport checks it before admitting anyone, and a ban kicks the
 * matching live connections. Runs before `ChatController` (priority 10) and
 * stops the chain on the commands it takes.
 */
@Controller()
export class AdminController {
  constructor(
    private readonly admin: AdminService,
    private readonly blockList: BlockListService,
    private readonly registry: ConnectionRegistry,
  ) {}

  /** Tells a banned address why it is refused, and until when. */
  @EarwaxEvent('on_block')
  refused(
    @Payload() reason: BlockReason,
    @Ctx() ctx: ConnectionContext,
  ): typeof EVENT_HANDLED | undefined {
    // Other refusals (server full, too many connections) get the
    // transport's own messages.
    if (reason !== 'blocked') return EVENT_UNHANDLED;
    const ban = this.blockList.match(ctx.hostname);
    const until =
      ban?.expiresAt === undefined ? '' : ` until ${isoTime(ban.expiresAt)}`;
    ctx.sendString(`You are banned from this server${until}.`);
    return EVENT_HANDLED;
  }

  @EarwaxEvent('on_data', { priority: 10 })
  command(
    @Payload() line: string,
    @Ctx() player: Player,
  ): typeof EVENT_HANDLED | undefined {
    // Until named, every line is a name attempt.
    if (player.data.name === undefined) return EVENT_UNHANDLED;
    const command = parseCommand(line);
    switch (command?.verb) {
      case 'admin':
        this.login(player, command.rest);
        return EVENT_HANDLED;
      case 'ban':
        if (this.allowed(player)) this.ban(player, command.args);
        return EVENT_HANDLED;
      case 'unban':
        if (this.allowed(player)) this.unban(player, command.args);
        return EVENT_HANDLED;
      case 'bans':
        if (this.allowed(player)) this.list(player);
        return EVENT_HANDLED;
      default:
        return EVENT_UNHANDLED;
    }
  }

  private login(player: Player, password: string): void {
    if (!this.admin.enabled) {
      player.sendString(DISABLED);
    } else if (password === '') {
      player.sendString('Usage: /admin <password>');
    } else if (this.admin.check(password)) {
      player.data.admin = true;
      player.logger.log(`${player.data.name} is now an admin.`);
      player.sendString('You are now an admin.');
    } else {
      player.logger.warn(`${player.data.name} gave a wrong admin password.`);
      player.sendString('Wrong password.');
    }
  }

  private allowed(player: Player): boolean {
    if (!this.admin.enabled) {
      player.sendString(DISABLED);
      return false;
    }
    if (player.data.admin !== true) {
      player.sendString('Only admins can do that: /admin <password> first.');
      return false;
    }
    return true;
  }

  private ban(player: Player, args: string[]): void {
    const [target, minutes] = args;
    if (target === undefined || args.length > 2) {
      player.sendString('Usage: /ban <ip-or-cidr> [minutes]');
      return;
    }
    if (minutes !== undefined && !/^[1-9]\d{0,6}$/.test(minutes)) {
      player.sendString('Minutes must be a whole number from 1 to 9999999.');
      return;
    }
    // The ban disconnects whom it matches at once: those no longer open.
    const online = [...this.registry];
    let ban: BanEntry;
    try {
      ban = this.blockList.ban(target, {
        duration: minutes === undefined ? undefined : Number(minutes) * 60_000,
        reason: `by ${player.data.name}`,
      });
    } catch (err) {
      if (!(err instanceof BlockListError)) throw err;
      player.sendString(`Cannot ban: ${err.message}`);
      return;
    }
    const kicked = online
      .filter((ctx) => !ctx.isOpen)
      .map((ctx) => nameOf(ctx) ?? ctx.toString());
    const period = minutes === undefined ? '' : ` for ${minutes} minute(s)`;
    player.sendString(
      `Banned ${ban.target}${period}; kicked ${kicked.join(', ') || 'nobody'}.`,
    );
  }

  private unban(player: Player, args: string[]): void {
    const [target] = args;
    if (target === undefined || args.length > 1) {
      player.sendString('Usage: /unban <ip-or-cidr>');
      return;
    }
    try {
      player.sendString(
        this.blockList.unban(target)
          ? `Unbanned ${target}.`
          : `${target} is not banned.`,
      );
    } catch (err) {
      if (!(err instanceof BlockListError)) throw err;
      player.sendString(`Cannot unban: ${err.message}`);
    }
  }

  private list(player: Player): void {
    const bans = this.blockList.list();
    if (bans.length === 0) {
      player.sendString('No bans.');
      return;
    }
    player.sendString(`Bans (${bans.length}):`);
    for (const ban of bans) {
      const until =
        ban.expiresAt === undefined
          ? 'permanent'
          : `until ${isoTime(ban.expiresAt)}`;
      const why = ban.reason === undefined ? '' : `, ${ban.reason}`;
      player.sendString(`  ${ban.target} (${until}${why})`);
    }
  }
}

const DISABLED = 'Admin commands are disabled: ADMIN_PASSWORD is not set.';

function isoTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}
