import type { Config } from "../lib/config";
import type { AuthUser } from "../lib/jwt";
import type { Logger } from "../lib/log";
import type { Db, HttpDb } from "../db/client";

export interface AppVariables {
  requestId: string;
  config: Config;
  log: Logger;
  /** Set by the auth middleware on authenticated routes. */
  user: AuthUser;
  /** A per-request Postgres pool, opened on first use and ended after the response. */
  db: () => Db;
  /**
   * The same database over HTTP, one statement per round trip and no connection of its own: for a request whose
   * every statement stands alone (the list, a conversation, unread counts). A transaction needs `db`.
   */
  httpDb: () => HttpDb;
  /** Work to run once the response is out, in order, before the request's pool ends (it may use `db`). */
  afterResponse: (work: () => Promise<unknown>) => void;
}

export interface AppEnv {
  Bindings: Env;
  Variables: AppVariables;
}
