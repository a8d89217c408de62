/**
 * Figure 5, agent footprint: one real agent (the single executable when it is
 * built, else `node dist/agent/main.js`) connected and idle, against a bare
 * Node process idling over the same window; the executable's size against the
 * Node binary it embeds; `--version` start-up against bare Node start-up.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { DroverClient } from '../../../sdk/index.js';
import type { BenchContext, FigureResult } from '../context.js';
import { CLK_TCK, ENTRY, sample, sleep, startAgent, startProcess, waitFor, type Proc, type ProcSample, type ServerProc } from '../procs.js';
import { p50, row } from '../report.js';

const MB = 1024 * 1024;

function timed(cmd: string, args: string[]): number {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${r.status ?? r.signal}`);
  return performance.now() - t0;
}

/** Starts the idle agent and the bare-Node baseline; `measure()` waits out the window and reports. */
export async function startFootprint(ctx: BenchContext, server: ServerProc, client: DroverClient) {
  const binary = existsSync(ENTRY.agentBinary);
  const windowMs = ctx.quick ? 5000 : 60_000;
  const agent: Proc = startAgent({ dir: ctx.dir, name: 'idle-agent', server: server.address, token: server.enrollToken, labels: { role: 'idle' }, binary });
  const bare: Proc = startProcess(process.execPath, ['-e', 'setInterval(() => {}, 1 << 30)'], join(ctx.dir, 'bare-node.log'));
  await waitFor(async () => (await client.fleet.get('idle-agent').catch(() => undefined))?.state === 'connected', 30_000, () => 'the idle agent to connect');
  // Past start-up (facts collection, first heartbeat): idle from here on.
  await sleep(2000);
  const a0 = sample(agent.pid);
  const b0 = sample(bare.pid);
  const t0 = performance.now();
  ctx.progress(`figure 5: idle ${binary ? 'agent executable' : 'node agent'} measured over ${windowMs / 1000} s (in the background)`);

  return {
    async measure(): Promise<FigureResult> {
      const left = t0 + windowMs - performance.now();
      if (left > 0) await sleep(left);
      const seconds = (performance.now() - t0) / 1000;
      const a1 = sample(agent.pid);
      const b1 = sample(bare.pid);
      await agent.stop();
      await bare.stop();
      const cpu = (s0: ProcSample, s1: ProcSample) => (100 * (s1.cpuSeconds - s0.cpuSeconds)) / seconds;
      const agentCpu = cpu(a0, a1);
      // One clock tick over the window: the resolution of /proc, so an idle baseline is never 0.
      const bareCpu = Math.max(cpu(b0, b1), (100 / CLK_TCK) / seconds);
      const rows = [
        row({
          id: 'agentFootprint.rssMB',
          figure: '5 agent footprint',
          what: `idle agent RSS after ${Math.round(seconds)} s`,
          value: a1.rssBytes / MB,
          unit: 'MB',
          baseline: { what: 'idle bare node', value: b1.rssBytes / MB, unit: 'MB' },
          target: { op: '<', limit: 60, text: '< 60 MB' },
        }),
        row({
          id: 'agentFootprint.cpuPercent',
          figure: '5 agent footprint',
          what: `idle agent CPU over ${Math.round(seconds)} s`,
          value: agentCpu,
          unit: '%',
          baseline: { what: 'idle bare node', value: bareCpu, unit: '%' },
          target: { op: '<', limit: 0.5, text: '< 0.5% CPU' },
          note: 'the baseline is floored at one clock tick over the window',
        }),
      ];
      const details: Record<string, unknown> = {
        process: binary ? ENTRY.agentBinary : `node ${ENTRY.agent}`,
        windowSeconds: seconds,
        agentPeakRssMB: a1.peakRssBytes / MB,
        agentCpuSeconds: a1.cpuSeconds - a0.cpuSeconds,
        bareNodeRssMB: b1.rssBytes / MB,
      };
      if (binary) {
        const size = statSync(ENTRY.agentBinary).size;
        const nodeSize = statSync(process.execPath).size;
        const runs = ctx.quick ? 3 : 10;
        const version: number[] = [];
        const bareStart: number[] = [];
        for (let i = 0; i < runs; i++) {
          version.push(timed(ENTRY.agentBinary, ['--version']));
          bareStart.push(timed(process.execPath, ['-e', '0']));
        }
        rows.push(
          row({
            id: 'agentFootprint.binaryMB',
            figure: '5 agent footprint',
            what: 'agent executable size',
            value: size / MB,
            unit: 'MB',
            baseline: { what: 'node binary', value: nodeSize / MB, unit: 'MB' },
          }),
          row({
            id: 'agentFootprint.versionStartMs',
            figure: '5 agent footprint',
            what: `agent executable --version (p50 of ${runs})`,
            value: p50(version),
            unit: 'ms',
            baseline: { what: 'node -e 0', value: p50(bareStart), unit: 'ms' },
          }),
        );
        Object.assign(details, { binaryBytes: size, nodeBinaryBytes: nodeSize, versionMs: version, bareNodeStartMs: bareStart });
      } else {
        details.binary = 'not built (npm run build:agent): size and --version start-up not measured';
      }
      return { rows, details };
    },
  };
}
