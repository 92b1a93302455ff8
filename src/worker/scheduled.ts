import { getConfig } from "../lib/config";
import { createLogger } from "../lib/log";

/** Cron Trigger entry point; archiving and maintenance jobs register here (issue [operations]). */
export async function runScheduled(controller: ScheduledController, env: Env): Promise<void> {
  const log = createLogger({ job: "scheduled", cron: controller.cron });
  getConfig(env);
  log.info("scheduled run", { scheduledTime: controller.scheduledTime });
}
