// Port helpers shared by the local stand-in services.
// Everything binds 127.0.0.1 only: these services have no auth worth the name and must never be reachable from outside.
import net from "node:net";

export const LOOPBACK_HOST = "127.0.0.1";

export function portInUseMessage(port: number, envName?: string): string {
  const hint = envName ? `Set ${envName} to another port` : "Choose another port";
  return `Port ${port} is in use. ${hint} (or 0 for any free port).`;
}

/** True when 127.0.0.1:port can be bound right now (it may of course be taken a moment later). */
export function isPortFree(port: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.unref();
    probe.once("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "EADDRINUSE" || err.code === "EACCES") resolve(false);
      else reject(err);
    });
    probe.listen({ port, host: LOOPBACK_HOST, exclusive: true }, () => {
      probe.close(() => resolve(true));
    });
  });
}

/** Throws the friendly "Port N is in use. Set ENV ..." error when a fixed port is taken; port 0 always passes. */
export async function assertPortFree(port: number, envName?: string): Promise<void> {
  if (port === 0) return;
  if (!(await isPortFree(port))) throw new Error(portInUseMessage(port, envName));
}

/** A port that was free a moment ago. Prefer passing 0 to the service itself, which has no race. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.unref();
    probe.once("error", reject);
    probe.listen({ port: 0, host: LOOPBACK_HOST }, () => {
      const addr = probe.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      probe.close(() => (port ? resolve(port) : reject(new Error("could not determine a free port"))));
    });
  });
}

/**
 * Listens on 127.0.0.1 and resolves the real port. Binding directly (instead of check-then-bind)
 * avoids a race; EADDRINUSE is translated into the same friendly message as assertPortFree.
 */
export function listenLoopback(server: net.Server, port: number, envName?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      server.off("listening", onListening);
      reject(err.code === "EADDRINUSE" ? new Error(portInUseMessage(port, envName)) : err);
    };
    const onListening = (): void => {
      server.off("error", onError);
      const addr = server.address();
      if (typeof addr === "object" && addr) resolve(addr.port);
      else reject(new Error("server has no TCP address"));
    };
    server.once("error", onError);
    server.once("listening", onListening);
    server.listen({ port, host: LOOPBACK_HOST, exclusive: true });
  });
}
