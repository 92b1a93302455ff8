import type { Config } from "../lib/config";
import type { AuthUser } from "../lib/jwt";
import type { Logger } from "../lib/log";
import type { Db } from "../db/client";

export interface AppVariables {
  requestId: string;
  config: Config;
  log: Logger;
  /** Set by the auth middleware on authenticated routes. */
  user: AuthUser;
  /** A per-request Postgres pool, opened on first use and ended after the response. */
  db: () => Db;
  /** Work to run once the response is out, in order, before the request's pool ends (it may use `db`). */
  afterResponse: (work: () => Promise<unknown>) => void;
}

export interface AppEnv {
  Bindings: Env;
  Variables: AppVariables;
}
