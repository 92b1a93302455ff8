import { DurableObject } from "cloudflare:workers";
import type { BusinessHours } from "../domain/business-hours";
import { asRpcResult, type RpcResult } from "../lib/errors";
import { createLogger } from "../lib/log";
import type { PresenceStatus } from "../protocol/frames";
import type {
  AgentPatch,
  AgentView,
  AssignInput,
  AssignOutcome,
  CloseInput,
  CloseOutcome,
  ConversationFacts,
  DeskSnapshot,
  HoursOutcome,
  OpenInput,
  OpenPlacement,
  Placement,
  ReleaseInput,
} from "./business/api";
import { Desk } from "./business/desk";
import { WorkerDeskEffects } from "./business/effects";
import { DeskStore } from "./business/store";

/**
 * One per business (named by the business id): its queue, its agents' load and presence, its routing. The logic
 * lives in business/desk.ts (plain module); this class wires it to the object's storage, alarm and env.
 * RPC methods answer with RpcResult values (lib/errors.ts), like the rooms.
 */
export class BusinessDesk extends DurableObject<Env> {
  readonly desk: Desk;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    const log = createLogger({ object: "BusinessDesk" });
    this.desk = new Desk({
      store: new DeskStore(ctx.storage.sql, ctx.storage.kv),
      effects: new WorkerDeskEffects(env, (work) => ctx.waitUntil(work), log),
      exclusive: (work) => ctx.blockConcurrencyWhile(work),
      waitUntil: (work) => ctx.waitUntil(work),
      setAlarm: (at) => (at === null ? ctx.storage.deleteAlarm() : ctx.storage.setAlarm(at)),
      now: () => Date.now(),
      log,
    });
  }

  open(input: OpenInput): Promise<RpcResult<OpenPlacement>> {
    return asRpcResult(() => this.desk.open(input));
  }

  placement(businessId: string, conversationId: string, facts: ConversationFacts): Promise<RpcResult<Placement>> {
    return asRpcResult(() => this.desk.placementOf(businessId, conversationId, facts));
  }

  assign(input: AssignInput): Promise<RpcResult<AssignOutcome>> {
    return asRpcResult(() => this.desk.assign(input));
  }

  close(input: CloseInput): Promise<RpcResult<CloseOutcome>> {
    return asRpcResult(() => this.desk.close(input));
  }

  release(input: ReleaseInput): Promise<RpcResult<Placement | null>> {
    return asRpcResult(() => this.desk.release(input));
  }

  upsertAgent(businessId: string, agentId: string, patch: AgentPatch, actorId: string): Promise<RpcResult<{ agent: AgentView; created: boolean }>> {
    return asRpcResult(() => this.desk.upsertAgent(businessId, agentId, patch, actorId));
  }

  removeAgent(businessId: string, agentId: string, actorId: string): Promise<RpcResult<void>> {
    return asRpcResult(() => this.desk.removeAgent(businessId, agentId, actorId));
  }

  setAvailability(businessId: string, agentId: string, isAvailable: boolean): Promise<RpcResult<AgentView>> {
    return asRpcResult(() => this.desk.setAvailability(businessId, agentId, isAvailable));
  }

  setHours(businessId: string, hours: BusinessHours | null, actorId: string): Promise<RpcResult<HoursOutcome>> {
    return asRpcResult(() => this.desk.setHours(businessId, hours, actorId));
  }

  snapshot(businessId: string): Promise<RpcResult<DeskSnapshot>> {
    return asRpcResult(() => this.desk.snapshot(businessId));
  }

  /** From the agent's UserSession, on presence transitions only. */
  async agentPresence(businessId: string, userId: string, status: PresenceStatus): Promise<void> {
    const result = await asRpcResult(() => this.desk.agentPresence(businessId, userId, status));
    if (!result.ok) throw new Error(`desk refused presence: ${result.status}`);
  }

  override async alarm(): Promise<void> {
    await this.desk.alarm();
  }
}
