/**
 * Turns the runs into one markdown table: a row per scenario step, server
 * and metric, with the median over repetitions, the min–max, and the ratio
 * of medians to the plain Node baseline of the same run.
 */
import { summarize } from './stats.mjs';

/** A figure with three significant digits, thousands separated. */
export function formatNumber(value) {
  if (!Number.isFinite(value)) return 'n/a';
  if (Math.abs(value) >= 1000) {
    return Math.round(value).toLocaleString('en-US');
  }
  if (value === 0) return '0';
  return String(Number(value.toPrecision(3)));
}

/**
 * The figures of one metric of one step, per server: `{ values, median,
 * min, max, n, errors }`, from `runs[server]` (one entry per repetition:
 * `{ results }` or `{ error }`).
 */
export function collect(runs, stepIndex, metric) {
  const values = [];
  const errors = [];
  for (const run of runs ?? []) {
    if (run.error) {
      errors.push(run.error);
      continue;
    }
    values.push(metric.get(run.results[stepIndex]));
  }
  return { ...summarize(values), values, errors };
}

/**
 * The markdown table.
 *
 * @param scenarios The scenario definitions that ran (see run.mjs).
 * @param results `results[scenario][server]` = runs.
 * @param servers Server definitions by key (for labels).
 * @param recorded Rows that are not measurements of this run (placeholders,
 *   figures recorded elsewhere): `{ scenario, step, metric, server, value }`.
 */
export function resultsTable(scenarios, results, servers, recorded = []) {
  const lines = [
    '| Scenario | Server | Metric | Median | Min–max | vs plain Node |',
    '| --- | --- | --- | ---: | ---: | ---: |',
  ];
  for (const scenario of scenarios) {
    scenario.steps.forEach((step, stepIndex) => {
      let firstOfStep = true;
      const baseline = {};
      for (const metric of scenario.metrics) {
        baseline[metric.key] = collect(
          results[scenario.key]?.plain,
          stepIndex,
          metric,
        ).median;
      }
      for (const serverKey of scenario.servers) {
        let firstOfServer = true;
        for (const metric of scenario.metrics) {
          const figures = collect(
            results[scenario.key]?.[serverKey],
            stepIndex,
            metric,
          );
          const base = baseline[metric.key];
          const ratio =
            serverKey === 'plain'
              ? '1.00×'
              : Number.isFinite(base) && base !== 0
                ? `${(figures.median / base).toFixed(2)}×`
                : '—';
          const range =
            figures.n > 1
              ? `${formatNumber(figures.min)}–${formatNumber(figures.max)}`
              : '—';
          const median = figures.errors.length
            ? `${formatNumber(figures.median)} (${figures.errors.length} failed)`
            : formatNumber(figures.median);
          lines.push(
            `| ${firstOfStep ? step.label : ''} | ${firstOfServer ? servers[serverKey].label : ''} | ${metric.label} | ${median} | ${range} | ${ratio} |`,
          );
          firstOfStep = false;
          firstOfServer = false;
        }
      }
      for (const row of recorded) {
        if (row.scenario !== scenario.key || row.step !== stepIndex) continue;
        lines.push(
          `|  | ${row.server} | ${row.metric} | ${row.value} | — | — |`,
        );
      }
    });
  }
  return lines.join('\n');
}
