/**
 * Speaking turns and barge-in while tools run: what the listener heard is
 * what the history keeps, and an interrupted tool step never leaves a call
 * without its result. Over loopback to the fake provider, for both wire
 * protocols (Chat Completions and Anthropic Messages).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Conversation from "../src/Conversation.js"
import { validateRequest } from "../src/internal/validate.js"
import type * as Llm from "../src/Llm.js"
import * as Message from "../src/Message.js"
import * as Tool from "../src/Tool.js"
import * as Toolkit from "../src/Toolkit.js"
import { backends } from "./support/backends.js"
import * as FakeProvider from "./support/FakeProvider.js"

const reply = "One is first. Two is second. Three is third. Four is last."

for (const backend of backends.filter((b) => b.name === "local" || b.name === "anthropic")) {
  describe(`speaking turns: ${backend.name}`, () => {
    const withServer = <A, E>(
      f: (server: FakeProvider.FakeProvider) => Effect.Effect<A, E, Llm.Llm | Conversation.Conversation>
    ) =>
      Effect.scoped(Effect.gen(function*() {
        const server = yield* FakeProvider.make
        return yield* f(server).pipe(
          Effect.provide(Layer.provideMerge(Conversation.layer({ maxTurns: 10 }), backend.layer(server.url)))
        )
      }))

    /** The body of request `i`, as text. */
    const body = (server: FakeProvider.FakeProvider, i: number) => JSON.stringify(server.requests[i]!.body)

    for (const chunkSize of [1, 5, 17]) {
      it.live(`a turn that completes speaks every chunk in order and records the whole reply (deltas of ${chunkSize})`, () =>
        withServer((server) =>
          Effect.gen(function*() {
            const conversation = yield* Conversation.Conversation
            server.enqueue({ kind: "reply", text: reply, chunkSize })
            const played: Array<string> = []
            const result = yield* conversation.speak("Count.", {
              sink: (chunk) => Effect.sync(() => played.push(chunk))
            })
            expect(played).toEqual(["One is first.", "Two is second.", "Three is third.", "Four is last."])
            expect(result.content).toBe(reply)
            const history = (yield* conversation.context).history
            expect(history.map((m) => m.role)).toEqual(["user", "assistant"])
            expect(history[1]).toMatchObject({ content: reply })
            expect(history[1]!.role === "assistant" && history[1]!.interrupted).toBeFalsy()
          })
        ))

      it.live(`barge-in after the second chunk: the history holds those two chunks, and the next turn sends them (deltas of ${chunkSize})`, () =>
        withServer((server) =>
          Effect.gen(function*() {
            const conversation = yield* Conversation.Conversation
            server.enqueue({ kind: "reply", text: reply, chunkSize }, { kind: "reply", text: "Sure." })
            const played: Array<string> = []
            const two = yield* Deferred.make<void>()
            const fiber = yield* Effect.fork(conversation.speak("Count.", {
              sink: (chunk) =>
                Effect.sleep("40 millis").pipe(
                  Effect.zipRight(Effect.sync(() => played.push(chunk))),
                  Effect.zipRight(played.length === 1 ? Deferred.succeed(two, undefined) : Effect.void)
                )
            }))
            yield* Deferred.await(two)
            yield* Fiber.interrupt(fiber)
            expect(played).toEqual(["One is first.", "Two is second."])
            const history = (yield* conversation.context).history
            expect(history.map((m) => m.role)).toEqual(["user", "assistant"])
            expect(history[1]).toMatchObject({ content: "One is first. Two is second.", interrupted: true })
            yield* conversation.send("Go on.")
            const next = body(server, 1)
            expect(next).toContain("One is first. Two is second.")
            expect(next).not.toContain("Three")
            expect(next).toContain("Go on.")
          })
        ))
    }

    it.live("a sink that reports the played part of the chunk in progress: that part is recorded too", () =>
      withServer((server) =>
        Effect.gen(function*() {
          const conversation = yield* Conversation.Conversation
          server.enqueue({ kind: "reply", text: reply, chunkSize: 5 })
          const midway = yield* Deferred.make<void>()
          let n = 0
          const fiber = yield* Effect.fork(conversation.speak("Count.", {
            sink: (_chunk, progress) =>
              ++n < 3 ? Effect.void : progress("Three is").pipe(
                Effect.zipRight(Deferred.succeed(midway, undefined)),
                Effect.zipRight(Effect.never)
              )
          }))
          yield* Deferred.await(midway)
          yield* Fiber.interrupt(fiber)
          const history = (yield* conversation.context).history
          expect(history[1]).toMatchObject({
            content: "One is first. Two is second. Three is",
            interrupted: true
          })
        })
      ))

    it.live("barge-in before anything was heard records no assistant message", () =>
      withServer((server) =>
        Effect.gen(function*() {
          const conversation = yield* Conversation.Conversation
          server.enqueue({ kind: "reply", text: reply })
          const playing = yield* Deferred.make<void>()
          const fiber = yield* Effect.fork(conversation.speak("Count.", {
            sink: () => Effect.zipRight(Deferred.succeed(playing, undefined), Effect.never)
          }))
          yield* Deferred.await(playing)
          yield* Fiber.interrupt(fiber)
          const history = (yield* conversation.context).history
          expect(history.map((m) => m.role)).toEqual(["user"])
        })
      ))

    it.live("a sink that fails fails the turn and leaves the conversation as it was", () =>
      withServer((server) =>
        Effect.gen(function*() {
          const conversation = yield* Conversation.Conversation
          server.enqueue({ kind: "reply", text: reply })
          const before = yield* conversation.context
          let n = 0
          const error = yield* Effect.flip(
            conversation.speak("Count.", { sink: () => (++n < 2 ? Effect.void : Effect.fail("speaker gone" as const)) })
          )
          expect(error).toBe("speaker gone")
          expect(yield* conversation.context).toBe(before)
        })
      ))

    it.live("invalid chunk options fail the turn and leave the conversation as it was", () =>
      withServer((server) =>
        Effect.gen(function*() {
          const conversation = yield* Conversation.Conversation
          server.enqueue({ kind: "reply", text: reply })
          const before = yield* conversation.context
          const error = yield* Effect.flip(
            conversation.speak("Count.", { sink: () => Effect.void, chunks: { minLength: -1 } })
          )
          expect(error._tag).toBe("LlmInvalidRequestError")
          expect(yield* conversation.context).toBe(before)
        })
      ))
  })

  describe(`barge-in while tools run: ${backend.name}`, () => {
    const withServer = <A, E>(
      f: (server: FakeProvider.FakeProvider) => Effect.Effect<A, E, Llm.Llm | Conversation.Conversation>
    ) =>
      Effect.scoped(Effect.gen(function*() {
        const server = yield* FakeProvider.make
        return yield* f(server).pipe(
          Effect.provide(Layer.provideMerge(Conversation.layer({ maxTurns: 10 }), backend.layer(server.url)))
        )
      }))

    /** A tool that signals `started`, then waits for `gate` (never, when absent), and signals `cancelled` if interrupted. */
    const gated = (name: string, options: {
      readonly started: Deferred.Deferred<void>
      readonly cancelled: Deferred.Deferred<void>
      readonly gate?: Deferred.Deferred<void>
      readonly interruptible?: boolean
    }) =>
      Tool.make(name, {
        description: `${name} runs until let go`,
        parameters: Schema.Struct({}),
        interruptible: options.interruptible,
        handler: () =>
          Deferred.succeed(options.started, undefined).pipe(
            Effect.zipRight(options.gate === undefined ? Effect.never : Deferred.await(options.gate)),
            Effect.as(`${name} done`),
            Effect.onInterrupt(() => Deferred.succeed(options.cancelled, undefined))
          )
      })

    /** Interrupts the turn once `started` resolved, opening `gate` after the interruption was asked for. */
    const bargeIn = (
      fiber: Fiber.RuntimeFiber<unknown, unknown>,
      started: ReadonlyArray<Deferred.Deferred<void>>,
      gate?: Deferred.Deferred<void>
    ) =>
      Effect.gen(function*() {
        for (const d of started) yield* Deferred.await(d)
        const interrupting = yield* Effect.fork(Fiber.interrupt(fiber))
        yield* Effect.sleep("20 millis")
        if (gate !== undefined) yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(interrupting)
      })

    it.live("a cancellable tool is interrupted with the turn, and its call is not recorded", () =>
      withServer((server) =>
        Effect.gen(function*() {
          const conversation = yield* Conversation.Conversation
          const started = yield* Deferred.make<void>()
          const cancelled = yield* Deferred.make<void>()
          server.enqueue(
            { kind: "reply", text: "Let me look.", toolCalls: [{ id: "a", name: "lookup", arguments: {} }] },
            { kind: "reply", text: "Fine." }
          )
          const kit = Toolkit.make(gated("lookup", { started, cancelled }))
          const fiber = yield* Effect.fork(conversation.speak("Look it up.", { sink: () => Effect.void, toolkit: kit }))
          yield* bargeIn(fiber, [started])
          expect(yield* Deferred.isDone(cancelled)).toBe(true)
          const history = (yield* conversation.context).messages
          expect(validateRequest(history, {})).toBeUndefined()
          // the step's text was said before the tool ran (a tool call ends it); the call is gone
          expect(history.map((m) => m.role)).toEqual(["user", "assistant"])
          expect(history[1]).toMatchObject({ content: "Let me look.", toolCalls: [], interrupted: true })
          yield* conversation.send("Never mind.")
          expect(JSON.stringify(server.requests[1]!.body)).not.toContain("lookup done")
        })
      ))

    it.live("barge-in while the tool step's text is spoken: no tool has run, and what was heard is recorded", () =>
      withServer((server) =>
        Effect.gen(function*() {
          const conversation = yield* Conversation.Conversation
          const started = yield* Deferred.make<void>()
          const cancelled = yield* Deferred.make<void>()
          const midway = yield* Deferred.make<void>()
          server.enqueue({
            kind: "reply",
            text: "On it. Checking now.",
            toolCalls: [{ id: "s", name: "send_message", arguments: {} }]
          })
          const kit = Toolkit.make(gated("send_message", { started, cancelled, interruptible: false }))
          const fiber = yield* Effect.fork(conversation.speak("Send it.", {
            toolkit: kit,
            sink: (chunk, progress) =>
              chunk === "On it." ? Effect.void : progress("Checking").pipe(
                Effect.zipRight(Deferred.succeed(midway, undefined)),
                Effect.zipRight(Effect.never)
              )
          }))
          yield* Deferred.await(midway)
          yield* Fiber.interrupt(fiber)
          expect(yield* Deferred.isDone(started)).toBe(false)
          const history = (yield* conversation.context).messages
          expect(validateRequest(history, {})).toBeUndefined()
          expect(history.map((m) => m.role)).toEqual(["user", "assistant"])
          expect(history[1]).toMatchObject({ content: "On it. Checking", toolCalls: [], interrupted: true })
        })
      ))

    it.live("a non-interruptible tool finishes despite the barge-in; its call and result are recorded", () =>
      withServer((server) =>
        Effect.gen(function*() {
          const conversation = yield* Conversation.Conversation
          const started = yield* Deferred.make<void>()
          const cancelled = yield* Deferred.make<void>()
          const gate = yield* Deferred.make<void>()
          server.enqueue(
            { kind: "reply", text: "Sending.", toolCalls: [{ id: "s", name: "send_message", arguments: {} }] },
            { kind: "reply", text: "Ok." }
          )
          const kit = Toolkit.make(gated("send_message", { started, cancelled, gate, interruptible: false }))
          const fiber = yield* Effect.fork(
            Stream.runDrain(conversation.sendStream("Send it.", { toolkit: kit }))
          )
          yield* bargeIn(fiber, [started], gate)
          expect(yield* Deferred.isDone(cancelled)).toBe(false)
          const history = (yield* conversation.context).messages
          expect(validateRequest(history, {})).toBeUndefined()
          expect(history.map((m) => m.role)).toEqual(["user", "assistant", "tool"])
          expect(history[1]).toMatchObject({ content: "Sending.", interrupted: true })
          expect(history[1]!.role === "assistant" && history[1]!.toolCalls.map((c) => c.id)).toEqual(["s"])
          expect(history[2]).toMatchObject({ toolCallId: "s", content: "send_message done" })
          expect(server.requests.length).toBe(1) // the loop went no further
          yield* conversation.send("Thanks.")
          expect(JSON.stringify(server.requests[1]!.body)).toContain("send_message done")
        })
      ))

    it.live("both in one step: only the completed call is recorded, and the history sends", () =>
      withServer((server) =>
        Effect.gen(function*() {
          const conversation = yield* Conversation.Conversation
          const startedA = yield* Deferred.make<void>()
          const cancelledA = yield* Deferred.make<void>()
          const startedB = yield* Deferred.make<void>()
          const cancelledB = yield* Deferred.make<void>()
          const gate = yield* Deferred.make<void>()
          server.enqueue(
            {
              kind: "reply",
              text: "On it. Checking now.",
              toolCalls: [
                { id: "a", name: "lookup", arguments: {} },
                { id: "b", name: "send_message", arguments: {} }
              ]
            },
            { kind: "reply", text: "Done." }
          )
          const kit = Toolkit.make(
            gated("lookup", { started: startedA, cancelled: cancelledA }),
            gated("send_message", { started: startedB, cancelled: cancelledB, gate, interruptible: false })
          )
          const fiber = yield* Effect.fork(conversation.speak("Both.", { sink: () => Effect.void, toolkit: kit }))
          yield* bargeIn(fiber, [startedA, startedB], gate)
          expect(yield* Deferred.isDone(cancelledA)).toBe(true)
          expect(yield* Deferred.isDone(cancelledB)).toBe(false)
          const history = (yield* conversation.context).messages
          expect(validateRequest(history, {})).toBeUndefined()
          expect(history.map((m) => m.role)).toEqual(["user", "assistant", "tool"])
          expect(history[1]!.role === "assistant" && history[1]!.toolCalls.map((c) => c.id)).toEqual(["b"])
          expect(history[1]).toMatchObject({ content: "On it. Checking now.", interrupted: true })
          expect(history[2]).toMatchObject({ toolCallId: "b" })
          const next = yield* conversation.send("And?")
          expect(next.content).toBe("Done.")
          const sent = JSON.stringify(server.requests[1]!.body)
          expect(sent).toContain("send_message done")
          expect(sent).not.toContain("\"a\"")
        })
      ))
  })
}

describe("Toolkit.execute interrupted", () => {
  it.live("a JSON Schema tool declared interruptible: false finishes and its result is seen; others are cancelled", () =>
    Effect.gen(function*() {
      const started = yield* Deferred.make<void>()
      const gate = yield* Deferred.make<void>()
      const cancelled = yield* Deferred.make<void>()
      const mustFinish = yield* Tool.fromJsonSchema("notify", {
        parameters: { type: "object", properties: {} },
        interruptible: false,
        handler: () => Effect.zipRight(Deferred.await(gate), Effect.succeed("sent"))
      })
      const slow = Tool.make("search", {
        description: "slow",
        parameters: Schema.Struct({}),
        handler: () =>
          Effect.zipRight(Deferred.succeed(started, undefined), Effect.never).pipe(
            Effect.onInterrupt(() => Deferred.succeed(cancelled, undefined))
          )
      })
      expect(mustFinish.interruptible).toBe(false)
      expect(slow.interruptible).toBe(true)
      const seen: Array<string> = []
      const fiber = yield* Effect.fork(Toolkit.execute(Toolkit.make(mustFinish, slow), [
        new Message.ToolCall({ id: "n", name: "notify", arguments: {} }),
        new Message.ToolCall({ id: "s", name: "search", arguments: {} })
      ], { onResult: (result) => seen.push(`${result.toolCallId}:${result.content}`) }))
      yield* Deferred.await(started)
      const interrupting = yield* Effect.fork(Fiber.interrupt(fiber))
      yield* Effect.sleep("20 millis")
      expect(seen).toEqual([])
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(interrupting)
      expect(seen).toEqual(["n:sent"])
      expect(yield* Deferred.isDone(cancelled)).toBe(true)
    }))
})
