import { expect } from "vitest";
import { api, newUser, type TestUser } from "./helpers";

/** Conversation fixtures that go through the public routes (the routes under test in these files). */

export async function users(n: number, prefix = "conv"): Promise<TestUser[]> {
  return Promise.all(Array.from({ length: n }, () => newUser(prefix)));
}

export async function direct(a: TestUser, b: TestUser): Promise<string> {
  const res = await api("POST", "/conversations/direct", { token: a.token, body: { targetUserId: b.id } });
  expect([200, 201], JSON.stringify(res.body)).toContain(res.status);
  return res.body.id;
}

export async function group(creator: TestUser, others: TestUser[], name?: string): Promise<string> {
  const res = await api("POST", "/conversations/group", {
    token: creator.token,
    body: { participantIds: others.map((u) => u.id), ...(name ? { name } : {}) },
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.id;
}

export async function send(conversationId: string, from: TestUser, content = "hello"): Promise<{ id: string; seq: number }> {
  const res = await api("POST", `/conversations/${conversationId}/messages`, { token: from.token, body: { content } });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body;
}

export const get = (conversationId: string, as: TestUser) => api("GET", `/conversations/${conversationId}`, { token: as.token });

export const roles = (conversation: { participants: { userId: string; role: string }[] }) =>
  Object.fromEntries(conversation.participants.map((p) => [p.userId, p.role]));
