import { Injectable } from '@nestjs/common';

/**
 * A promise a test opens when it chooses: handlers await `open` to stay
 * busy until the test calls `release()`. Injectable, so a controller can
 * receive the same instance the test gets from the app.
 */
@Injectable()
export class Gate {
  private opened!: () => void;
  readonly open = new Promise<void>((resolve) => (this.opened = resolve));

  /** Lets every waiting handler go on. */
  release(): void {
    this.opened();
  }
}
