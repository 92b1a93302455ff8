import type { Context } from "hono";
import { createProfileProvider } from "../profiles/provider";
import type { ProfileRequest, ProfileSet } from "../profiles/types";
import type { AppEnv } from "./env";

export function profileProvider(c: Context<AppEnv>) {
  const config = c.var.config;
  return createProfileProvider({
    url: config.PROFILE_SERVICE_URL,
    token: config.PROFILE_SERVICE_TOKEN,
    timeoutMs: config.PROFILE_SERVICE_TIMEOUT,
  });
}

export function loadProfiles(c: Context<AppEnv>, request: ProfileRequest): Promise<ProfileSet> {
  return profileProvider(c).load(request);
}
