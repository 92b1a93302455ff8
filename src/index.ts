import { createApp } from "./worker/app";
import { runScheduled } from "./worker/scheduled";

export { ConversationRoom } from "./durable-objects/conversation-room";
export { UserSession } from "./durable-objects/user-session";
export { BusinessDesk } from "./durable-objects/business-desk";

const app = createApp();

export default {
  fetch: app.fetch,
  scheduled(controller, env, ctx) {
    ctx.waitUntil(runScheduled(controller, env));
  },
} satisfies ExportedHandler<Env>;
