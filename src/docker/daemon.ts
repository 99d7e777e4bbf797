/**
 * The live Docker daemon, through dockerode, when one answers (`--host`, `DOCKER_HOST`, or the default socket).
 * No daemon is normal: every function answers null instead of failing. dockerode is loaded only when a daemon
 * may be there, so offline commands stay fast.
 */
import * as fs from 'node:fs';

export interface DaemonInfo {
  host: string;
  serverVersion: string | null;
  driver: string | null;
  dockerRootDir: string | null;
  /** `DriverStatus` pairs as the daemon reports them ("Pool Name", "Data Space Used", ...). */
  driverStatus: Record<string, string>;
}

export interface DaemonContainer {
  id: string;
  name: string;
  graphDriver: { name: string | null; deviceId: number | null; deviceName: string | null; deviceSize: number | null };
  running: boolean;
}

export const DEFAULT_SOCKET = '/var/run/docker.sock';

/** What to connect to: --host, else DOCKER_HOST, else the default socket. */
export function daemonTarget(host?: string): string {
  return host ?? process.env.DOCKER_HOST ?? `unix://${DEFAULT_SOCKET}`;
}

function modemOptions(target: string): Record<string, unknown> | null {
  if (target.startsWith('unix://')) return { socketPath: target.slice(7) || DEFAULT_SOCKET };
  if (target.startsWith('/')) return { socketPath: target };
  const m = /^(tcp|http|https):\/\/([^:/]+)(?::(\d+))?/.exec(target);
  if (m) return { protocol: m[1] === 'https' ? 'https' : 'http', host: m[2], port: Number(m[3] ?? 2375) };
  return null;
}

export interface Daemon {
  info: DaemonInfo;
  container(ref: string): Promise<DaemonContainer | null>;
}

function num(v: unknown): number | null {
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && /^\d+$/.test(v)) return Number(v);
  return null;
}

/** Connects and asks for `docker info`; null when nothing answers within the timeout. */
export async function connectDaemon(host?: string, timeoutMs = 2000): Promise<Daemon | null> {
  const target = daemonTarget(host);
  const opts = modemOptions(target);
  if (!opts) return null;
  if (typeof opts.socketPath === 'string' && !fs.existsSync(opts.socketPath)) return null;
  const { default: Docker } = await import('dockerode');
  const docker = new Docker({ ...opts, timeout: timeoutMs });
  let raw: Record<string, unknown>;
  try {
    raw = (await docker.info()) as Record<string, unknown>;
  } catch {
    return null;
  }
  const status: Record<string, string> = {};
  if (Array.isArray(raw.DriverStatus))
    for (const p of raw.DriverStatus) if (Array.isArray(p) && p.length === 2) status[String(p[0])] = String(p[1]);
  const info: DaemonInfo = {
    host: target,
    serverVersion: typeof raw.ServerVersion === 'string' ? raw.ServerVersion : null,
    driver: typeof raw.Driver === 'string' ? raw.Driver : null,
    dockerRootDir: typeof raw.DockerRootDir === 'string' ? raw.DockerRootDir : null,
    driverStatus: status,
  };
  return {
    info,
    async container(ref: string): Promise<DaemonContainer | null> {
      try {
        type Inspect = {
          Id?: string;
          Name?: string;
          State?: { Running?: boolean };
          GraphDriver?: { Name?: unknown; Data?: Record<string, unknown> };
        };
        const c = (await docker.getContainer(ref).inspect()) as unknown as Inspect;
        const gd = c.GraphDriver ?? {};
        const data = gd.Data ?? {};
        return {
          id: String(c.Id),
          name: String(c.Name ?? '').replace(/^\//, ''),
          running: c.State?.Running === true,
          graphDriver: {
            name: typeof gd.Name === 'string' ? gd.Name : null,
            deviceId: num(data.DeviceId),
            deviceName: typeof data.DeviceName === 'string' ? data.DeviceName : null,
            deviceSize: num(data.DeviceSize),
          },
        };
      } catch {
        return null;
      }
    },
  };
}
