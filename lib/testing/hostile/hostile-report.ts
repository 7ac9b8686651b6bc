import type {
  HostileConnectionOutcome,
  HostileResult,
} from './hostile.interfaces.js';

/** How many different last lines a report lists for one attack. */
const MAX_LISTED = 4;

/**
 * One attack's result as a few lines of text: what was sent, how the
 * hostile connections ended, whether the probe was served, and any error.
 *
 * @param result What an attack returned.
 * @returns The lines, joined with `\n`.
 *
 * @publicApi
 */
export function formatHostileResult(result: HostileResult): string {
  const mark = result.error ? 'ERROR' : result.served ? 'ok' : 'NOT SERVED';
  const lines = [
    `[${mark}] ${result.attack}: ${result.description} (${seconds(result.durationMs)})`,
  ];
  const { connections: tally, probe } = result;
  if (tally.attempted === 1 && result.connection) {
    lines.push(`  hostile: ${describeOutcome(result.connection)}`);
  } else if (tally.attempted > 1) {
    const { endings } = tally;
    const parts = [
      `${tally.connected}/${tally.attempted} connected`,
      `${endings.closed_by_server} closed by the server`,
      `${endings.reset_by_server} reset by the server`,
      `${endings.closed_by_client} closed by the client (the server closed ${tally.serverClosed} in all)`,
    ];
    if (endings.failed > 0) parts.push(`${endings.failed} failed`);
    if (tally.greeted > 0) parts.push(`${tally.greeted} greeted`);
    lines.push(`  hostile: ${parts.join(', ')}`);
    const received = Object.entries(tally.lastReceived)
      .sort((a, b) => b[1] - a[1])
      .slice(0, MAX_LISTED)
      .map(
        ([line, n]) =>
          `${n}x ${line === '' ? '(nothing)' : JSON.stringify(line)}`,
      );
    lines.push(`  last received: ${received.join('; ')}`);
    const errors = Object.entries(tally.errors);
    if (errors.length > 0) {
      lines.push(
        `  socket errors: ${errors.map(([code, n]) => `${n}x ${code}`).join(', ')}`,
      );
    }
  }
  lines.push(
    `  probe: before ${yes(probe.before)}; during ${probe.during.served}/${probe.during.attempts} served; after ${yes(probe.after)}; new connection ${yes(probe.afterNew)}`,
  );
  for (const failure of probe.failures)
    lines.push(`  probe failure: ${failure}`);
  if (result.error) lines.push(`  error: ${result.error}`);
  return lines.join('\n');
}

/**
 * A report of several attacks: a heading, each result
 * ({@link formatHostileResult}), and a summary line.
 *
 * @param results What the attacks returned.
 * @returns The report, lines joined with `\n`.
 *
 * @publicApi
 */
export function formatHostileReport(results: readonly HostileResult[]): string {
  const target = results[0]?.target ?? 'no target';
  return [
    `Hostile clients against ${target}`,
    ...results.map(formatHostileResult),
    summarizeHostileResults(results),
  ].join('\n');
}

/**
 * The summary line of a report: how many attacks left the server serving
 * its probe throughout.
 *
 * @internal
 */
export function summarizeHostileResults(
  results: readonly HostileResult[],
): string {
  const served = results.filter((r) => r.served && !r.error).length;
  return `${served} of ${results.length} attacks left the server serving its probe throughout.`;
}

function describeOutcome(outcome: HostileConnectionOutcome): string {
  const how = {
    closed_by_server: 'closed by the server',
    reset_by_server: 'reset by the server',
    closed_by_client: outcome.serverClosed
      ? 'ended by the client, then closed by the server'
      : 'closed by the client, the server having not closed it',
    failed: 'never connected',
  }[outcome.ending];
  const parts = [how];
  if (outcome.afterMs !== undefined)
    parts.push(`after ${seconds(outcome.afterMs)}`);
  parts.push(
    `${outcome.bytesSent} bytes sent, ${outcome.bytesReceived} received`,
  );
  parts.push(
    `last received: ${outcome.lastReceived === '' ? '(nothing)' : JSON.stringify(outcome.lastReceived)}`,
  );
  if (outcome.answered) parts.push("the probe's line was answered on it");
  if (outcome.error) parts.push(`socket error ${outcome.error}`);
  return parts.join('; ');
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}

function yes(value: boolean): string {
  return value ? 'yes' : 'NO';
}
