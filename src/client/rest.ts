import { ChatApiError, errorFromResponse } from "./errors";
import { randomId } from "./ids";
import type {
  AgentAvailability,
  ArchivePage,
  AuditPage,
  AuditVerifyReport,
  AgentInput,
  BusinessAdmin,
  BusinessAgent,
  BusinessAgents,
  BusinessAssignment,
  BusinessClosed,
  BusinessConversation,
  BusinessHours,
  BusinessHoursStatus,
  BusinessPlacement,
  BusinessQueue,
  BusinessStats,
  Conversation,
  ConversationPage,
  CreateBusinessInput,
  CreateGroupInput,
  DevLoginResult,
  Health,
  HealthDetailed,
  InvalidateResult,
  JobReport,
  JobRuns,
  MarkAllReadResult,
  Me,
  Message,
  MessagePage,
  MuteResult,
  NumberedConversationPage,
  Participant,
  ReadReceipts,
  ReadResult,
  RetentionSettings,
  GroupRole,
  SavedBusinessHours,
  SearchResult,
  SendMessageInput,
  Ticket,
  UnreadCounts,
  UnreadResult,
} from "./types";

export type TokenSource = string | (() => string | Promise<string>);

export interface RestOptions {
  /** Where the API lives, e.g. `https://chat.example.com` or `""` for the page's own origin in a browser. */
  baseUrl: string;
  /** Bearer token, or a function returning a fresh one (called for every request and every socket). */
  token?: TokenSource;
  /** A fetch implementation (default: the global fetch). */
  fetch?: typeof fetch;
  /** Per-request timeout (ms). Default 15 000. */
  timeoutMs?: number;
  /**
   * Retries of safe requests (GET, and message sends: idempotent by clientMessageId) after a network error, 429 or
   * 503, and of any write refused with 429 (the rate limiter answers before the write is made). Default 2.
   */
  retries?: number;
}

type Query = Record<string, string | number | boolean | undefined | null>;

const enc = encodeURIComponent;

const abortedError = () => new ChatApiError({ statusCode: 0, message: "Request aborted", code: "aborted" });

function abortedCheck(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortedError();
}

/** A retry's wait, cut short by the caller's signal. */
function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortedError());
    const stop = () => {
      clearTimeout(timer);
      reject(abortedError());
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", stop);
      resolve();
    }, ms);
    signal?.addEventListener("abort", stop, { once: true });
  });
}

/** Typed REST calls for the whole contract (§2–§5). Errors are thrown as ChatApiError. */
export class ChatRest {
  protected readonly baseUrl: string;
  private tokenSource: TokenSource | undefined;
  private readonly fetchImpl: typeof fetch;
  private readonly timeoutMs: number;
  private readonly retries: number;

  constructor(options: RestOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    // Without its scheme ("chat.example.com") or relative ("/api"), every call failed with a bare "Invalid URL" and
    // a socket retried for ever without a word: the mistake is told here, where it is made.
    if (this.baseUrl !== "" && !/^https?:\/\/[^/]/i.test(this.baseUrl)) {
      throw new TypeError(`baseUrl must be an absolute http(s) URL such as "https://chat.example.com", or "" for the page's own origin (got "${options.baseUrl}")`);
    }
    this.tokenSource = options.token;
    // Bound: a browser's fetch must be called on its global object.
    this.fetchImpl = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.timeoutMs = options.timeoutMs ?? 15_000;
    this.retries = options.retries ?? 2;
  }

  setToken(token: TokenSource | undefined): void {
    this.tokenSource = token;
  }

  async token(): Promise<string | undefined> {
    const t = this.tokenSource;
    return typeof t === "function" ? await t() : t;
  }

  /**
   * Any route, typed by the caller: the escape hatch for routes added after this SDK version. `idempotent`: a write
   * the server applies once however often it arrives, retried like a GET. `signal`: ends the call, its retries and
   * their waits (a ChatApiError of code `aborted`, status 0).
   */
  async request<T>(
    method: string,
    path: string,
    options: { body?: unknown; query?: Query; auth?: boolean; idempotent?: boolean; signal?: AbortSignal } = {},
  ): Promise<T> {
    const url = new URL(this.baseUrl + path, this.baseUrl ? undefined : globalOrigin());
    for (const [k, v] of Object.entries(options.query ?? {})) if (v !== undefined && v !== null) url.searchParams.set(k, String(v));
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    const safe = method === "GET" || method === "HEAD" || options.idempotent === true;
    for (let attempt = 0; ; attempt++) {
      const headers: Record<string, string> = { accept: "application/json" };
      if (options.body !== undefined) headers["content-type"] = "application/json";
      // Read for every try: a token that expired during a retry's wait turned a retried 503 into a 401.
      if (options.auth !== false) {
        const token = await this.bearer();
        if (token) headers.authorization = `Bearer ${token}`;
      }
      try {
        abortedCheck(options.signal);
        return await this.once<T>(method, url.toString(), headers, body, options.signal);
      } catch (err) {
        const e = err as ChatApiError;
        const wait = e.retryAfter !== undefined ? e.retryAfter * 1000 : 250 * 2 ** attempt;
        // A 429 is the rate limiter's, which answers before the route runs: the write was not made, and trying it
        // again is as safe as a GET. Writes failed on it although the server had asked for only a second's wait.
        const retryable = safe ? e.isRetryable : e.statusCode === 429;
        if (!retryable || attempt >= this.retries || wait > 10_000 || options.signal?.aborted) throw e;
        await pause(wait, options.signal);
      }
    }
  }

  /**
   * The token for a call. A token function that fails (its refresh offline, say) escaped as its own error: an app
   * that tells ChatApiErrors apart (`instanceof`, `isRetryable`) took it for a bug instead of a call that failed.
   */
  private async bearer(): Promise<string | undefined> {
    try {
      return await this.token();
    } catch (err) {
      if (err instanceof ChatApiError) throw err;
      throw new ChatApiError({ statusCode: 0, message: `Could not get a token: ${(err as Error)?.message ?? String(err)}`, code: "token", cause: err });
    }
  }

  private async once<T>(method: string, url: string, headers: Record<string, string>, body: string | undefined, signal?: AbortSignal): Promise<T> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.timeoutMs);
    const callerAborted = () => controller.abort();
    signal?.addEventListener("abort", callerAborted, { once: true });
    // The timeout covers the body too, and also a fetch or a body that does not listen to the signal: before, it
    // ended with the headers, and an answer that stalled mid-body left the call (a send's spinner) pending for ever.
    const aborted = new Promise<never>((_, reject) => controller.signal.addEventListener("abort", () => reject(new Error("aborted")), { once: true }));
    aborted.catch(() => {});
    // With a code, as the sockets' failures have: a REST call that timed out or met no network had none, and an app
    // branching on `code` ("timeout" from a socket request) handled the same failure two ways.
    const noAnswer = (cause: unknown) =>
      signal?.aborted
        ? abortedError()
        : controller.signal.aborted
          ? new ChatApiError({ statusCode: 0, message: `${method} ${url} timed out after ${this.timeoutMs} ms`, code: "timeout", error: "Timeout", cause })
          : new ChatApiError({ statusCode: 0, message: `${method} ${url} failed: network error`, code: "network", cause });
    let res: Response;
    let text = "";
    try {
      try {
        res = await Promise.race([this.fetchImpl(url, { method, headers, body, signal: controller.signal }), aborted]);
      } catch (cause) {
        throw noAnswer(cause);
      }
      try {
        text = await Promise.race([res.text(), aborted]);
      } catch (cause) {
        // A success whose body was cut off carries no result: it is no answer (retried when safe), never `undefined`
        // handed to the app as the message. A refusal keeps its status.
        if (res.ok) throw noAnswer(cause);
      }
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", callerAborted);
    }
    let json: unknown = undefined;
    let parsed = true;
    if (text) {
      try {
        json = JSON.parse(text);
      } catch {
        parsed = false;
      }
    }
    if (!res.ok) throw errorFromResponse(res.status, res.statusText, json, res.headers);
    // A success that is not JSON (a baseUrl naming the web app's server, which answers every path with its page; a
    // captive portal) was handed to the app as `undefined`, and failed later as a TypeError far from the cause.
    if (!parsed) {
      const type = res.headers.get("content-type") ?? "no content type";
      throw new ChatApiError({
        statusCode: res.status,
        message: `${method} ${url} answered ${res.status} with ${type}, not JSON: is baseUrl the chat API?`,
        code: "invalid_response",
        requestId: res.headers.get("x-request-id") ?? undefined,
      });
    }
    return json as T;
  }

  // ── Auth (§2) ──────────────────────────────────────────────────────────────────────────────────────────

  /** Local development only (DEV_LOGIN=true): a token for any kahaId. Does not change this client's token. */
  devLogin(kahaId: string, name?: string): Promise<DevLoginResult> {
    return this.request("POST", "/auth/dev-login", { body: name === undefined ? { kahaId } : { kahaId, name }, auth: false });
  }

  me(options: { signal?: AbortSignal } = {}): Promise<Me> {
    return this.request("GET", "/auth/me", options);
  }

  /** A single-use ticket (60 s) for a browser WebSocket. */
  createTicket(options: { signal?: AbortSignal } = {}): Promise<Ticket> {
    return this.request("POST", "/realtime/tickets", options);
  }

  // ── Health (§3) ────────────────────────────────────────────────────────────────────────────────────────

  health(): Promise<Health> {
    return this.request("GET", "/health", { auth: false });
  }

  healthDetailed(): Promise<HealthDetailed> {
    return this.request("GET", "/health/detailed", { auth: false });
  }

  /** The OpenAPI 3.1 document. */
  openApi(): Promise<Record<string, unknown>> {
    return this.request("GET", "/openapi.json", { auth: false });
  }

  // ── Conversations (§5) ─────────────────────────────────────────────────────────────────────────────────

  /** The direct conversation with another user (created once per pair; found afterwards). */
  createDirect(targetUserId: string): Promise<Conversation> {
    return this.request("POST", "/conversations/direct", { body: { targetUserId } });
  }

  createGroup(input: CreateGroupInput): Promise<Conversation> {
    return this.request("POST", "/conversations/group", { body: input });
  }

  /** The caller's open conversation with a business (as customer). */
  createBusiness(input: CreateBusinessInput): Promise<BusinessConversation> {
    return this.request("POST", "/conversations/business", { body: input });
  }

  /** Most recent activity first; pass `nextCursor` back as `cursor` for the next page. */
  listConversations(options: { limit?: number; cursor?: string } = {}): Promise<ConversationPage> {
    return this.request("GET", "/conversations", { query: options });
  }

  /** Numbered pages (the older form). */
  listConversationsPage(options: { page: number; limit?: number }): Promise<NumberedConversationPage> {
    return this.request("GET", "/conversations", { query: options });
  }

  getConversation(conversationId: string, options: { signal?: AbortSignal } = {}): Promise<Conversation> {
    return this.request("GET", `/conversations/${enc(conversationId)}`, options);
  }

  /** Rename a group (group admin). */
  renameConversation(conversationId: string, name: string): Promise<Conversation> {
    return this.request("PATCH", `/conversations/${enc(conversationId)}`, { body: { name } });
  }

  addParticipant(conversationId: string, userId: string, role?: GroupRole): Promise<Participant> {
    return this.request("POST", `/conversations/${enc(conversationId)}/participants`, { body: role ? { userId, role } : { userId } });
  }

  /** Remove a member (group admin) — or leave, with your own id. */
  async removeParticipant(conversationId: string, userId: string): Promise<void> {
    await this.request("DELETE", `/conversations/${enc(conversationId)}/participants/${enc(userId)}`);
  }

  setParticipantRole(conversationId: string, userId: string, role: GroupRole): Promise<Participant> {
    return this.request("PUT", `/conversations/${enc(conversationId)}/participants/${enc(userId)}/role`, { body: { role } });
  }

  setMuted(conversationId: string, isMuted: boolean): Promise<MuteResult> {
    return this.request("PUT", `/conversations/${enc(conversationId)}/mute`, { body: { isMuted } });
  }

  /** Mark read up to a seq or a message (default: the latest). Read marks never move backwards. */
  markRead(conversationId: string, at: { seq?: number; messageId?: string } = {}): Promise<ReadResult> {
    return this.request("PUT", `/conversations/${enc(conversationId)}/read`, { body: at });
  }

  getUnreadCount(conversationId: string): Promise<UnreadResult> {
    return this.request("GET", `/conversations/${enc(conversationId)}/unread-count`);
  }

  getReadReceipts(conversationId: string): Promise<ReadReceipts> {
    return this.request("GET", `/conversations/${enc(conversationId)}/read-receipts`);
  }

  // ── Messages (§5) ──────────────────────────────────────────────────────────────────────────────────────

  /**
   * Sends over REST. A clientMessageId is generated when none is given, and a send that got no answer (network error,
   * timeout, 429, 503) is retried with it: the server stores the message once and answers a retry with the original.
   * Not retried, a send whose answer was lost failed in the app although everyone saw the message, and the user's
   * retry (a new call, a new id) stored it twice. Pass your own clientMessageId to retry safely across calls too.
   */
  sendMessage(conversationId: string, input: SendMessageInput): Promise<Message> {
    const body = { ...input, clientMessageId: input.clientMessageId ?? randomId() };
    return this.request("POST", `/conversations/${enc(conversationId)}/messages`, { body, idempotent: true });
  }

  /** History, ascending seq. No cursor: the newest page; `before` pages back, `after` forward. */
  listMessages(conversationId: string, options: { limit?: number; before?: number; after?: number } = {}): Promise<MessagePage> {
    return this.request("GET", `/conversations/${enc(conversationId)}/messages`, { query: options });
  }

  getMessage(conversationId: string, messageId: string): Promise<Message> {
    return this.request("GET", `/conversations/${enc(conversationId)}/messages/${enc(messageId)}`);
  }

  /** Edit your own message. */
  editMessage(conversationId: string, messageId: string, content: string): Promise<Message> {
    return this.request("PATCH", `/conversations/${enc(conversationId)}/messages/${enc(messageId)}`, { body: { content } });
  }

  /** Soft delete (sender, or group admin): a tombstone keeps the id and seq. */
  async deleteMessage(conversationId: string, messageId: string): Promise<void> {
    await this.request("DELETE", `/conversations/${enc(conversationId)}/messages/${enc(messageId)}`);
  }

  /** Full-text search in one conversation, newest first. */
  searchMessages(conversationId: string, q: string, options: { limit?: number; cursor?: string } = {}): Promise<SearchResult> {
    return this.request("GET", `/conversations/${enc(conversationId)}/messages/search`, { query: { q, ...options } });
  }

  /** Full-text search across all the caller's conversations, newest first. */
  searchAllMessages(q: string, options: { limit?: number; cursor?: string } = {}): Promise<SearchResult> {
    return this.request("GET", "/messages/search", { query: { q, ...options } });
  }

  // ── Notifications (§5) ─────────────────────────────────────────────────────────────────────────────────

  getUnreadCounts(): Promise<UnreadCounts> {
    return this.request("GET", "/notifications/unread-counts");
  }

  markAllRead(): Promise<MarkAllReadResult> {
    return this.request("PUT", "/notifications/mark-all-read");
  }

  // ── Business (§5) ──────────────────────────────────────────────────────────────────────────────────────

  setAgent(businessId: string, agentId: string, input: AgentInput = {}): Promise<BusinessAgent> {
    return this.request("PUT", `/business/${enc(businessId)}/agents/${enc(agentId)}`, { body: input });
  }

  async removeAgent(businessId: string, agentId: string): Promise<void> {
    await this.request("DELETE", `/business/${enc(businessId)}/agents/${enc(agentId)}`);
  }

  listAgents(businessId: string): Promise<BusinessAgents> {
    return this.request("GET", `/business/${enc(businessId)}/agents`);
  }

  /** The caller's availability as an agent, in every business they serve. */
  setAvailability(isAvailable: boolean): Promise<AgentAvailability> {
    return this.request("PUT", "/business/agents/me/availability", { body: { isAvailable } });
  }

  setBusinessHours(businessId: string, hours: BusinessHours): Promise<SavedBusinessHours> {
    return this.request("PUT", `/business/${enc(businessId)}/hours`, { body: hours });
  }

  getBusinessHours(businessId: string): Promise<SavedBusinessHours> {
    return this.request("GET", `/business/${enc(businessId)}/hours`);
  }

  /** Open now (or at `at`, an ISO-8601 instant), and when that changes. */
  getBusinessStatus(businessId: string, options: { at?: string } = {}): Promise<BusinessHoursStatus> {
    return this.request("GET", `/business/${enc(businessId)}/hours/status`, { query: options });
  }

  /** Remove the saved hours (the business is always open again). */
  async deleteBusinessHours(businessId: string): Promise<void> {
    await this.request("DELETE", `/business/${enc(businessId)}/hours`);
  }

  /** Assign a business conversation to an agent (automatic when agentId is omitted). */
  assignConversation(conversationId: string, agentId?: string, reason?: string): Promise<BusinessAssignment> {
    const body = { ...(agentId ? { agentId } : {}), ...(reason ? { reason } : {}) };
    return this.request("POST", `/business/conversations/${enc(conversationId)}/assign`, { body });
  }

  /** Close a business conversation (its customer, its agent or a business admin); frees the agent's slot. */
  closeBusinessConversation(conversationId: string, reason?: string): Promise<BusinessClosed> {
    return this.request("POST", `/business/conversations/${enc(conversationId)}/close`, { body: reason ? { reason } : {} });
  }

  /** Where a business conversation stands: queued (with its position), assigned (with the agent) or closed. */
  getQueuePosition(conversationId: string): Promise<BusinessPlacement> {
    return this.request("GET", `/business/conversations/${enc(conversationId)}/queue-position`);
  }

  /** The waiting line: all of it for admins, the caller's own entries for customers. */
  getQueue(businessId: string, options: { limit?: number } = {}): Promise<BusinessQueue> {
    return this.request("GET", `/business/${enc(businessId)}/queue`, { query: options });
  }

  /** Load now and figures over the last `days` (default 30). */
  getBusinessStats(businessId: string, options: { days?: number } = {}): Promise<BusinessStats> {
    return this.request("GET", `/business/${enc(businessId)}/stats`, { query: options });
  }

  /** Register a business admin (service token only). */
  setBusinessAdmin(businessId: string, userId: string): Promise<BusinessAdmin> {
    return this.request("PUT", `/business/${enc(businessId)}/admins/${enc(userId)}`);
  }

  /** Unregister a business admin (service token only); a token with role "admin" stays an admin of every business. */
  async removeBusinessAdmin(businessId: string, userId: string): Promise<void> {
    await this.request("DELETE", `/business/${enc(businessId)}/admins/${enc(userId)}`);
  }

  // ── Operations: archive, audit log, jobs, retention ────────────────────────────────────────────────────

  /** Messages moved to the archive (older than the retention period), newest page first. */
  listArchivedMessages(conversationId: string, options: { limit?: number; before?: number } = {}): Promise<ArchivePage> {
    return this.request("GET", `/conversations/${enc(conversationId)}/archive`, { query: options });
  }

  /** A conversation's audit log, newest first (group admins and service tokens). */
  getConversationAudit(conversationId: string, options: { limit?: number; before?: number } = {}): Promise<AuditPage> {
    return this.request("GET", `/conversations/${enc(conversationId)}/audit`, { query: options });
  }

  /** The global audit chain (entries without a conversation), newest first (service token). */
  getAuditLog(options: { limit?: number; before?: number } = {}): Promise<AuditPage> {
    return this.request("GET", "/operations/audit", { query: options });
  }

  /** Recomputes audit hash chains and names the first broken row of each (service token). */
  verifyAudit(input: { conversationId?: string; globalOnly?: boolean; maxRows?: number } = {}): Promise<AuditVerifyReport> {
    return this.request("POST", "/operations/audit/verify", { body: input });
  }

  /** Last run of every maintenance job (service token). */
  listJobs(): Promise<JobRuns> {
    return this.request("GET", "/operations/jobs");
  }

  /** Runs one job now (service token; audited). */
  runJob(job: string): Promise<JobReport> {
    return this.request("POST", `/operations/jobs/${enc(job)}/run`);
  }

  getRetention(conversationId: string): Promise<RetentionSettings> {
    return this.request("GET", `/operations/conversations/${enc(conversationId)}/retention`);
  }

  /** Retention override in days (null: the default) and legal hold (service token; audited). */
  setRetention(conversationId: string, input: { retentionDays?: number | null; legalHold?: boolean }): Promise<RetentionSettings> {
    return this.request("PUT", `/operations/conversations/${enc(conversationId)}/retention`, { body: input });
  }

  // ── Profiles (§7) ──────────────────────────────────────────────────────────────────────────────────────

  /** Drop cached profiles (profile-service token or an admin JWT). */
  invalidateProfiles(input: { user_uuids?: string[]; business_uuids?: string[] }): Promise<InvalidateResult> {
    return this.request("POST", "/profiles/invalidate", { body: input });
  }
}

/** In a browser, `baseUrl: ""` means the page's origin. */
function globalOrigin(): string | undefined {
  const loc = (globalThis as { location?: { origin?: string } }).location;
  return loc?.origin;
}
