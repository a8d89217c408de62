/**
 * Host facts (sent once in Hello) and live usage (sent in each Heartbeat),
 * read with systeminformation. Disk use comes from statfs of the state dir's
 * filesystem, which spawns nothing.
 */
import { statfs } from 'node:fs/promises';
import { hostname, loadavg } from 'node:os';
import si from 'systeminformation';
import type { Facts, Heartbeat } from '../proto/index.js';
import type { Journal } from './journal.js';

export async function collectFacts(version: string): Promise<Facts> {
  const [os, cpu, mem, disks, nics] = await Promise.all([
    si.osInfo(),
    si.cpu(),
    si.mem(),
    si.fsSize().catch(() => []),
    si.networkInterfaces().catch(() => []),
  ]);
  const ifaces = Array.isArray(nics) ? nics : [nics];
  return {
    hostname: hostname(),
    os: `${os.distro} ${os.release}`.trim() || os.platform,
    osRelease: os.kernel,
    arch: process.arch,
    cpuModel: `${cpu.manufacturer} ${cpu.brand}`.trim(),
    cpuCount: cpu.cores,
    memoryBytes: mem.total,
    disks: disks.map((d) => ({ mount: d.mount, fs: d.type, sizeBytes: d.size })),
    ipAddresses: ifaces.flatMap((n) => [n.ip4, n.ip6]).filter((ip): ip is string => !!ip),
    agentVersion: version,
  };
}

export class Usage {
  constructor(
    private readonly diskPath: string,
    private readonly journal: Pick<Journal, 'bytesOnDisk' | 'unacked' | 'droppedLogBytes'>,
  ) {}

  async sample(runningSteps: number): Promise<Heartbeat> {
    const [load, mem, fs, net] = await Promise.all([
      si.currentLoad(),
      si.mem(),
      statfs(this.diskPath).catch(() => undefined),
      si.networkStats('*').catch(() => []),
    ]);
    const diskPercent = fs && fs.blocks > 0 ? (100 * (fs.blocks - fs.bfree)) / fs.blocks : 0;
    const sum = (k: 'rx_sec' | 'tx_sec') => Math.max(0, Math.round(net.reduce((a, n) => a + (n[k] ?? 0), 0)));
    return {
      atMs: Date.now(),
      cpuPercent: round(load.currentLoad),
      memoryPercent: round((100 * mem.active) / mem.total),
      memoryUsedBytes: mem.active,
      memoryTotalBytes: mem.total,
      diskPercent: round(diskPercent),
      load: loadavg().map(round),
      netRxBytesPerSec: sum('rx_sec'),
      netTxBytesPerSec: sum('tx_sec'),
      runningSteps,
      journalBytes: this.journal.bytesOnDisk,
      journalUnacked: this.journal.unacked,
      journalDroppedLogBytes: this.journal.droppedLogBytes,
    };
  }
}

const round = (n: number) => Math.round(n * 10) / 10;
