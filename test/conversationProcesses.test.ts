/**
 * Conversations shared by several processes through a real Redis server:
 * a conversation written by one child process, killed with SIGKILL in the
 * middle of a turn, is resumed by another with every committed turn, its
 * prompt-cache key, and no half turn; two processes writing the same
 * conversation at once lose no turn. The children talk to the fake provider
 * started here (test/support/processes/conversation.ts).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as ConversationStore from "../src/internal/conversationStore.js"
import * as SharedState from "../src/SharedState.js"
import { fakeKey } from "./support/backends.js"
import * as FakeProvider from "./support/FakeProvider.js"
import { child } from "./support/processes.js"
import { testRedis } from "./support/redis.js"

type Body = { readonly messages: ReadonlyArray<{ role: string; content: string }>; readonly prompt_cache_key?: string }

/** The last user message of a request. */
const lastUser = (body: Body) => body.messages.filter((m) => m.role === "user").at(-1)?.content ?? ""

/** What Redis holds for conversation `id` (prefix `p:`, as the children use). */
const stored = (url: string, id: string) =>
  Effect.gen(function*() {
    const built = yield* Layer.build(SharedState.layerRedis({ url, keyPrefix: "p:" }))
    const state = Context.get(built, SharedState.SharedState)
    if (state._tag !== "Redis") throw new Error("expected Redis")
    const hash = Option.getOrThrow(yield* state.connection.run((c) => c.hgetall(`p:conversation:${id}`)))
    return { version: Number(hash.v), record: yield* ConversationStore.decode(hash.r!) }
  })

describe("conversations across processes", () => {
  it.scoped("a process killed mid-turn: another resumes it with every committed turn and no half turn", () =>
    Effect.gen(function*() {
      const redis = yield* testRedis
      const server = yield* FakeProvider.make
      server.respond((request) => {
        const said = lastUser(request.body as Body)
        // the third turn's reply stops after its first words, and the process is killed while it waits
        return said === "three"
          ? { kind: "reply", text: "Three is a long answer", chunkSize: 4, stallAfterEvents: 3 }
          : { kind: "reply", text: `re: ${said}` }
      })
      const env = { REDIS_URL: redis.url, LLM_URL: server.url, LLM_KEY: fakeKey, CONVERSATION_ID: "call-42" }
      const first = yield* child("conversation.ts", env)
      expect(yield* Effect.promise(() => first.next())).toMatchObject({ context: { history: [] } })
      expect(yield* Effect.promise(() => first.ask({ op: "send", text: "one" }))).toEqual({
        sent: "one",
        reply: "re: one"
      })
      yield* Effect.promise(() => first.ask({ op: "send", text: "two" }))
      expect(yield* Effect.promise(() => first.ask({ op: "stream", text: "three" }))).toEqual({ streaming: "three" })
      first.process.kill("SIGKILL")
      expect(yield* Effect.promise(() => first.exited)).toBe("SIGKILL")

      const committed = ["one", "re: one", "two", "re: two"]
      const kept = yield* stored(redis.url, "call-42")
      expect(kept.version).toBe(2)
      expect(kept.record.context.history.map((m) => m.content)).toEqual(committed)

      const second = yield* child("conversation.ts", env)
      const resumed = (yield* Effect.promise(() => second.next())) as {
        context: { systemMessage: string; history: ReadonlyArray<{ content: string }> }
      }
      expect(resumed.context.systemMessage).toBe("Be brief.")
      expect(resumed.context.history.map((m) => m.content)).toEqual(committed)
      expect(yield* Effect.promise(() => second.ask({ op: "send", text: "four" }))).toEqual({
        sent: "four",
        reply: "re: four"
      })
      const bodies = server.requests.map((request) => request.body as Body)
      expect(bodies.map(lastUser)).toEqual(["one", "two", "three", "four"])
      expect(bodies[3]!.messages.map((m) => m.content)).toEqual(["Be brief.", ...committed, "four"])
      // the same prompt-cache key in both processes: the backend's cache of the prefix is reused
      expect(bodies[3]!.prompt_cache_key).toBe(bodies[0]!.prompt_cache_key)
      expect(bodies[0]!.prompt_cache_key).toMatch(/^[0-9a-f-]{36}$/)
      const after = (yield* Effect.promise(() => second.ask({ op: "context" }))) as {
        context: { history: ReadonlyArray<{ content: string }> }
      }
      expect(after.context.history.map((m) => m.content)).toEqual([...committed, "four", "re: four"])
    }))

  it.scoped("two processes writing the same conversation at once lose no turn", () =>
    Effect.gen(function*() {
      const redis = yield* testRedis
      const server = yield* FakeProvider.make
      // each round's replies wait until both of its requests are in: both turns start on the same version
      server.respond((request) => {
        const said = lastUser(request.body as Body)
        return {
          kind: "gated",
          until: server.waitForRequests(2 * Number(said.slice(1)), 20_000),
          then: { kind: "reply", text: `re: ${said}` }
        }
      })
      const env = { REDIS_URL: redis.url, LLM_URL: server.url, LLM_KEY: fakeKey, CONVERSATION_ID: "both" }
      const a = yield* child("conversation.ts", env)
      const b = yield* child("conversation.ts", env)
      yield* Effect.promise(() => Promise.all([a.next(), b.next()]))
      const rounds = 4
      for (let round = 1; round <= rounds; round++) {
        const answers = yield* Effect.promise(() =>
          Promise.all([a.ask({ op: "send", text: `a${round}` }), b.ask({ op: "send", text: `b${round}` })])
        )
        expect(answers).toEqual([
          { sent: `a${round}`, reply: `re: a${round}` },
          { sent: `b${round}`, reply: `re: b${round}` }
        ])
      }
      const { record, version } = yield* stored(redis.url, "both")
      // one write per turn, each whole: every user message followed by its own reply
      expect(version).toBe(2 * rounds)
      const history = record.context.history.map((m) => m.content)
      expect(history).toHaveLength(4 * rounds)
      for (let i = 0; i < history.length; i += 2) expect(history[i + 1]).toBe(`re: ${history[i]}`)
      const users = history.filter((_, i) => i % 2 === 0)
      expect([...users].sort()).toEqual(["a1", "a2", "a3", "a4", "b1", "b2", "b3", "b4"])
      // rounds stay in order, and each round's turns started on every earlier round's
      for (let round = 1; round <= rounds; round++) {
        expect(users.slice(2 * (round - 1), 2 * round).sort()).toEqual([`a${round}`, `b${round}`])
      }
      // every turn raced the other process's turn of its round: it was sent on the earlier rounds only
      // (and the one recorded second was added after the other)
      expect(server.requests).toHaveLength(2 * rounds)
      for (const request of server.requests) {
        const body = request.body as Body
        const round = Number(lastUser(body).slice(1))
        const seen = body.messages.filter((m) => m.role === "user").map((m) => m.content)
        expect(seen.slice(0, -1).sort()).toEqual(users.slice(0, 2 * (round - 1)).sort())
      }
      // both processes see the same history
      const seenBy = yield* Effect.promise(() => Promise.all([a.ask({ op: "context" }), b.ask({ op: "context" })]))
      for (const seen of seenBy) {
        expect(
          (seen as { context: { history: ReadonlyArray<{ content: string }> } }).context.history.map((m) => m.content)
        )
          .toEqual(history)
      }
    }))
})
