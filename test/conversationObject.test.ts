/**
 * A conversation turn answered with a value (`Conversation.sendObject`):
 * tools may run first, repairs send an invalid answer back, and the turn is
 * recorded once the value is decoded, without the repair exchange; a turn
 * that ends without a value leaves the conversation as it was. Over loopback
 * against the fake provider, on a local backend and on Anthropic (whose
 * answer comes as its output tool's call, recorded as text).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as ConversationContext from "../src/Context.js"
import * as Conversation from "../src/Conversation.js"
import { validateRequest } from "../src/internal/validate.js"
import * as Tool from "../src/Tool.js"
import * as Toolkit from "../src/Toolkit.js"
import { type Backend, backends } from "./support/backends.js"
import * as FakeProvider from "./support/FakeProvider.js"

const Timer = Schema.Struct({ minutes: Schema.Number, label: Schema.String })

const local = backends.find((backend) => backend.name === "local")!
const anthropic = backends.find((backend) => backend.name === "anthropic")!

/** Runs `f` with a conversation (a system prompt, no turns) over `backend` on a fresh fake server. */
const withConversation = <A, E>(
  backend: Backend,
  f: (server: FakeProvider.FakeProvider, conversation: Conversation.Conversation.Service) => Effect.Effect<A, E>
) =>
  Effect.scoped(Effect.gen(function*() {
    const server = yield* FakeProvider.make
    const conversation = yield* Conversation.make(ConversationContext.make({ systemMessage: "You set timers." })).pipe(
      Effect.provide(backend.layer(server.url, { retry: { maxRetries: 0 } }))
    )
    return yield* f(server, conversation)
  }))

/** What the history holds: each message's role and text (tool calls by name). */
const historyOf = (context: ConversationContext.ConversationContext) =>
  context.history.map((message) =>
    message.role === "assistant" && message.toolCalls.length > 0
      ? `assistant: ${message.toolCalls.map((call) => call.name).join(",")}`
      : `${message.role}: ${message.content}`
  )

/** A reply whose text is `value` as JSON, in the backend's way (Anthropic's: its output tool's call). */
const answer = (backend: Backend, value: unknown): FakeProvider.Script =>
  backend.name === "anthropic"
    ? { kind: "reply", toolCalls: [{ id: "toolu_out", name: "output", arguments: value as Record<string, unknown> }] }
    : { kind: "reply", text: JSON.stringify(value) }

describe("Conversation.sendObject", () => {
  for (const backend of [local, anthropic]) {
    it.live(`${backend.name}: the value, and the turn recorded with the answer as text; the next turn sends it`, () =>
      withConversation(backend, (server, conversation) =>
        Effect.gen(function*() {
          server.enqueue(answer(backend, { minutes: 5, label: "tea" }), { kind: "reply", text: "Done." })
          const result = yield* conversation.sendObject("Five minutes for tea", Timer, { name: "output" })
          expect(result.value).toEqual({ minutes: 5, label: "tea" })
          const context = yield* conversation.context
          expect(historyOf(context)).toEqual([
            "user: Five minutes for tea",
            `assistant: ${JSON.stringify({ minutes: 5, label: "tea" })}`
          ])
          expect(validateRequest(context.messages, {})).toBeUndefined()
          // a plain turn after it: the whole history goes out, and the backend accepts it
          expect((yield* conversation.send("Thanks")).content).toBe("Done.")
          expect(server.requests).toHaveLength(2)
        })))
  }

  it.live("tools run first, once, and their steps are recorded before the answer", () =>
    withConversation(local, (server, conversation) =>
      Effect.gen(function*() {
        let runs = 0
        const now = Tool.make("current_time", {
          description: "The time now",
          parameters: Schema.Struct({}),
          handler: () => Effect.sync(() => (runs++, "12:00"))
        })
        server.enqueue(
          { kind: "reply", toolCalls: [{ id: "call_1", name: "current_time", arguments: {} }] },
          answer(local, { minutes: 30, label: "lunch" })
        )
        const result = yield* conversation.sendObject("Lunch at half past", Timer, { toolkit: Toolkit.make(now) })
        expect(result.value).toEqual({ minutes: 30, label: "lunch" })
        expect(runs).toBe(1)
        expect(historyOf(yield* conversation.context)).toEqual([
          "user: Lunch at half past",
          "assistant: current_time",
          "tool: 12:00",
          `assistant: ${JSON.stringify({ minutes: 30, label: "lunch" })}`
        ])
        // both requests asked for the value's format
        for (const request of server.requests) {
          expect((request.body as { response_format?: { type: string } }).response_format?.type).toBe("json_schema")
        }
      })))

  it.live("a repaired answer is recorded alone: the invalid one and the correction are not", () =>
    withConversation(local, (server, conversation) =>
      Effect.gen(function*() {
        server.enqueue(answer(local, { minutes: "five", label: "tea" }), answer(local, { minutes: 5, label: "tea" }))
        const result = yield* conversation.sendObject("Five minutes for tea", Timer, { repair: 1 })
        expect(result.attempts).toBe(2)
        // the correction went to the model
        const second = server.requests[1]!.body as { messages: ReadonlyArray<{ role: string; content: string }> }
        expect(second.messages.at(-1)!.role).toBe("user")
        expect(second.messages.at(-2)!.content).toBe(JSON.stringify({ minutes: "five", label: "tea" }))
        expect(historyOf(yield* conversation.context)).toEqual([
          "user: Five minutes for tea",
          `assistant: ${JSON.stringify({ minutes: 5, label: "tea" })}`
        ])
      })))

  it.live("no value (invalid, repairs spent) or a failed call: LlmOutputError or the call's error, nothing recorded", () =>
    withConversation(local, (server, conversation) =>
      Effect.gen(function*() {
        const before = yield* conversation.context
        server.enqueue(answer(local, { minutes: "five" }))
        const invalid = yield* Effect.flip(conversation.sendObject("Five minutes", Timer))
        expect(invalid._tag).toBe("LlmOutputError")
        expect(yield* conversation.context).toBe(before)
        server.enqueue({ kind: "status", status: 400, body: { error: { message: "bad request", type: "invalid" } } })
        const failed = yield* Effect.flip(conversation.sendObject("Five minutes", Timer))
        expect(failed._tag).toBe("LlmInvalidRequestError")
        expect(yield* conversation.context).toBe(before)
      })))

  it.live("discards a pending speculation, as send does", () =>
    withConversation(local, (server, conversation) =>
      Effect.gen(function*() {
        server.respond((request) => {
          const body = request.body as { response_format?: unknown }
          // the speculation's reply never comes; the object turn's does
          return body.response_format === undefined
            ? { kind: "hang" }
            : answer(local, { minutes: 5, label: "tea" })
        })
        yield* conversation.preempt("Five minutes")
        yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 20)))
        yield* conversation.sendObject("Five minutes for tea", Timer)
        expect(yield* conversation.speculation).toEqual({ started: 1, reused: 0, wasted: 1 })
      })))
})

describe("Conversation.sendObject and the conversation store", () => {
  it.live("the object turn is stored: another conversation with the same id starts its turn on it", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      const layer = local.layer(server.url, { retry: { maxRetries: 0 } })
      const start = ConversationContext.make({ systemMessage: "You set timers." })
      const one = yield* Effect.provide(Conversation.make(start, { id: "shared-object-turn" }), layer)
      const two = yield* Effect.provide(Conversation.make(start, { id: "shared-object-turn" }), layer)
      server.enqueue(answer(local, { minutes: 5, label: "tea" }), { kind: "reply", text: "Done." })
      yield* one.sendObject("Five minutes for tea", Timer)
      yield* two.send("Thanks")
      const sent = server.requests[1]!.body as { messages: ReadonlyArray<{ content: string }> }
      expect(sent.messages.map((message) => message.content)).toEqual([
        "You set timers.",
        "Five minutes for tea",
        JSON.stringify({ minutes: 5, label: "tea" }),
        "Thanks"
      ])
    })))
})
