import { LineClient } from './line-client.js';

/**
 * A player of test/support/redis-app-child.ts: a line client that knows its
 * connection id and process, and asks commands whose answers may arrive
 * between broadcasts.
 */
export class Player {
  private constructor(
    readonly client: LineClient,
    /** The connection id the server gave it. */
    readonly id: string,
    /** The process that holds it. */
    readonly node: string,
  ) {}

  /**
   * Connects (from `from`, a loopback address, for a distinct client IP) and
   * waits for the greeting `id <id> <node>`.
   */
  static async join(port: number, from?: string): Promise<Player> {
    const client = await LineClient.connect(port, from);
    try {
      const greeting = await client.line(0);
      const match = /^id (\S+) (\S+)$/.exec(greeting);
      if (!match) throw new Error(`Unexpected greeting ${greeting}`);
      return new Player(client, match[1], match[2]);
    } catch (err) {
      client.socket.destroy();
      throw err;
    }
  }

  /** Every line received. */
  get lines(): readonly string[] {
    return this.client.lines;
  }

  /**
   * Sends a command and waits for its answer: the first line after those
   * already received that matches `answer`.
   */
  async ask(command: string, answer: RegExp) {
    const from = this.client.lines.length;
    this.client.send(command);
    const find = () =>
      this.client.lines.slice(from).find((line) => answer.test(line));
    await this.client.until(
      () => find() !== undefined,
      `the answer to "${command}" (${String(answer)})`,
    );
    return find() as string;
  }

  /** Waits until it has received `line`. */
  async hears(line: string): Promise<void> {
    await this.client.expectLine(line);
  }

  /** Closes its side and waits for the server's close. */
  async leave(): Promise<void> {
    if (!this.client.socket.destroyed) await this.client.end();
  }
}
