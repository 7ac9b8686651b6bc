/**
 * Jest's node environment, plus one thing: when a test or hook fails (its
 * timeout included) while waits of the test support are pending, the
 * failure also lists them, each with what it awaited and what it had seen
 * (see test/support/pending-waits.ts). The waits have no time limit of
 * their own, so a wait that never ends is reported this way rather than by
 * a bare "Exceeded timeout".
 */
import { TestEnvironment } from 'jest-environment-node';

const REGISTRY = Symbol.for('nestjs-earwax.pending-waits');
/** How many pending waits a report lists. */
const LISTED = 20;
/** How long one description may be in a report. */
const DESCRIPTION_LIMIT = 4000;

export default class EarwaxTestEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    this.global[REGISTRY] = new Set();
  }

  handleTestEvent(event) {
    switch (event.name) {
      case 'test_start':
        // What an earlier test left pending is not this test's.
        this.abandonPending();
        break;
      case 'hook_start':
        if (event.hook.type === 'beforeAll') this.abandonPending();
        break;
      case 'test_fn_failure': {
        const report = this.report('the test failed');
        if (report) event.test.errors.push(report);
        break;
      }
      case 'hook_failure': {
        const report = this.report(`its ${event.hook.type} hook failed`);
        if (!report) break;
        if (event.hook.type === 'beforeAll' && event.describeBlock) {
          addToEachTest(event.describeBlock, report);
        } else if (event.test) {
          event.test.errors.push(report);
        } else {
          // An afterAll hook: Jest reports its errors for the whole file.
          console.error(report.message);
        }
        break;
      }
    }
  }

  async teardown() {
    this.abandonPending();
    await super.teardown();
  }

  pending() {
    return this.global[REGISTRY];
  }

  abandonPending() {
    const waits = [...this.pending()];
    this.pending().clear();
    for (const wait of waits) wait.abandon?.();
  }

  /** An Error listing the pending waits, or undefined if there are none. */
  report(when) {
    const waits = [...this.pending()];
    if (waits.length === 0) return undefined;
    const lines = waits.slice(0, LISTED).map((wait) => {
      let text;
      try {
        text = wait.describe();
      } catch (err) {
        text = `(its description failed: ${err})`;
      }
      return `  - ${text.slice(0, DESCRIPTION_LIMIT)}`;
    });
    if (waits.length > LISTED) {
      lines.push(`  ... and ${waits.length - LISTED} more`);
    }
    const message = `Still waiting when ${when}:\n${lines.join('\n')}`;
    const error = new Error(message);
    // The message is the whole story; this file's stack would only add noise.
    error.stack = message;
    return error;
  }
}

function addToEachTest(block, error) {
  for (const child of block.children) {
    if (child.type === 'describeBlock') addToEachTest(child, error);
    else if (child.type === 'test') child.errors.push(error);
  }
}
