/**
 * What a streamed turn records when its consumer stops early, for a reply
 * whose events arrive together (the whole body in one write, so one read
 * carries many deltas): exactly the events handed to the consumer, never
 * the rest of the read. Over loopback to the fake provider, for every backend.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as Conversation from "../src/Conversation.js"
import type * as Llm from "../src/Llm.js"
import type { StreamEvent } from "../src/Reply.js"
import { backends } from "./support/backends.js"
import * as FakeProvider from "./support/FakeProvider.js"

const reply = "One two three four five six seven eight nine ten."

/** The text of the deltas among `events`. */
const textOf = (events: ReadonlyArray<StreamEvent>) =>
  events.flatMap((event) => (event._tag === "TextDelta" ? [event.text] : [])).join("")

for (const backend of backends) {
  describe(`a streamed turn records what was handed on: ${backend.name}`, () => {
    const withServer = <A, E>(
      f: (server: FakeProvider.FakeProvider) => Effect.Effect<A, E, Llm.Llm | Conversation.Conversation>
    ) =>
      Effect.scoped(Effect.gen(function*() {
        const server = yield* FakeProvider.make
        return yield* f(server).pipe(
          Effect.provide(Layer.provideMerge(Conversation.layer({ maxTurns: 10 }), backend.layer(server.url)))
        )
      }))

    for (const taken of [1, 3, 6]) {
      it.live(`a consumer taking ${taken} events of a reply read at once: those events' text is recorded`, () =>
        withServer((server) =>
          Effect.gen(function*() {
            const conversation = yield* Conversation.Conversation
            server.enqueue({ kind: "reply", text: reply, chunkSize: 5 })
            const events = Chunk.toReadonlyArray(
              yield* Stream.runCollect(Stream.take(conversation.sendStream("Count."), taken))
            )
            const heard = textOf(events)
            const history = (yield* conversation.context).history
            expect(history.map((m) => m.role)).toEqual(heard === "" ? ["user"] : ["user", "assistant"])
            if (heard !== "") expect(history[1]).toMatchObject({ content: heard, interrupted: true })
            expect(heard.length).toBeLessThan(reply.length)
          })
        ))
    }

    it.live("a consumer interrupted while it handles the third delta: the first three are recorded", () =>
      withServer((server) =>
        Effect.gen(function*() {
          const conversation = yield* Conversation.Conversation
          server.enqueue({ kind: "reply", text: reply, chunkSize: 5 })
          const handed: Array<string> = []
          const third = yield* Deferred.make<void>()
          const fiber = yield* Effect.fork(
            Stream.runForEach(conversation.sendStream("Count."), (event) => {
              if (event._tag !== "TextDelta") return Effect.void
              handed.push(event.text)
              return handed.length < 3 ? Effect.void : Effect.zipRight(Deferred.succeed(third, undefined), Effect.never)
            })
          )
          yield* Deferred.await(third)
          yield* Fiber.interrupt(fiber)
          expect(handed).toEqual(["One t", "wo th", "ree f"])
          const history = (yield* conversation.context).history
          expect(history.map((m) => m.role)).toEqual(["user", "assistant"])
          expect(history[1]).toMatchObject({ content: "One two three f", interrupted: true })
        })
      ))

    it.live("a consumer that takes every event but the Finish: the turn is recorded whole, marked interrupted", () =>
      withServer((server) =>
        Effect.gen(function*() {
          const conversation = yield* Conversation.Conversation
          server.enqueue({ kind: "reply", text: reply, chunkSize: 5 }, { kind: "reply", text: reply, chunkSize: 5 })
          const all = Chunk.toReadonlyArray(yield* Stream.runCollect(conversation.sendStream("Count.")))
          const beforeFinish = all.findIndex((event) => event._tag === "Finish")
          expect(beforeFinish).toBe(all.length - 1)
          const events = Chunk.toReadonlyArray(
            yield* Stream.runCollect(Stream.take(conversation.sendStream("Again."), beforeFinish))
          )
          expect(textOf(events)).toBe(reply)
          const history = (yield* conversation.context).history
          expect(history.map((m) => m.role)).toEqual(["user", "assistant", "user", "assistant"])
          expect(history[1]!.role === "assistant" && history[1]!.interrupted).toBeFalsy()
          expect(history[3]).toMatchObject({ content: reply, interrupted: true })
        })
      ))

    it.live("a consumer that reads to the end: the whole reply is recorded, not interrupted", () =>
      withServer((server) =>
        Effect.gen(function*() {
          const conversation = yield* Conversation.Conversation
          server.enqueue({ kind: "reply", text: reply, chunkSize: 5 })
          const events = Chunk.toReadonlyArray(yield* Stream.runCollect(conversation.sendStream("Count.")))
          expect(textOf(events)).toBe(reply)
          const history = (yield* conversation.context).history
          expect(history.map((m) => m.role)).toEqual(["user", "assistant"])
          expect(history[1]).toMatchObject({ content: reply })
          expect(history[1]!.role === "assistant" && history[1]!.interrupted).toBeFalsy()
        })
      ))
  })
}
