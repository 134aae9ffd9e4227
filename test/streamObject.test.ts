/**
 * `Llm.streamObject` (issue 18) over loopback against the fake provider, for
 * every backend: partial values as the JSON arrives, monotone and ending in
 * the decoded value, under every chunking of the bytes (a property test over
 * Anthropic's recorded tool-input stream and a Chat Completions stream);
 * array elements streamed once each; a value that fails the Schema; refusals
 * (Anthropic's recorded one); interruption mid-stream closing the request;
 * a fallback chain answering with the object.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import type * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as fc from "fast-check"
import * as Fallback from "../src/layers/Fallback.js"
import * as Local from "../src/layers/Local.js"
import * as Llm from "../src/Llm.js"
import * as Message from "../src/Message.js"
import type { ObjectStreamEvent } from "../src/StructuredOutput.js"
import { type Backend, backends } from "./support/backends.js"
import * as FakeProvider from "./support/FakeProvider.js"
import { readFixture, streamScript } from "./support/fixtures.js"

const ask = [Message.user("What should I cook?")]

const Recipe = Schema.Struct({
  title: Schema.String,
  minutes: Schema.Number,
  steps: Schema.Array(Schema.String),
  note: Schema.optional(Schema.String)
})

const recipe = { title: "Crème brûlée 🍮", minutes: 45, steps: ["heat \"cream\"", "whisk", "bake"], note: null }

/** The reply carrying `json` as each backend streams a structured value. */
const valueReply = (backend: Backend, json: unknown, name = "output", chunkSize = 4): FakeProvider.Script =>
  backend.protocol === "messages"
    ? {
      kind: "reply",
      toolCalls: [{ id: "toolu_out", name, arguments: json as Record<string, unknown> }],
      argumentsChunkSize: chunkSize
    }
    : { kind: "reply", text: JSON.stringify(json), chunkSize }

/** Whether `next` extends `previous` (strings grow, containers keep what they had). */
const extendsValue = (previous: unknown, next: unknown): boolean => {
  if (previous === undefined) return true
  if (typeof previous === "string") return typeof next === "string" && next.startsWith(previous)
  if (Array.isArray(previous)) {
    return Array.isArray(next) && next.length >= previous.length &&
      previous.every((item, i) => extendsValue(item, next[i]))
  }
  if (typeof previous === "object" && previous !== null) {
    return typeof next === "object" && next !== null &&
      Object.entries(previous).every(([key, value]) => extendsValue(value, (next as Record<string, unknown>)[key]))
  }
  return previous === next
}

/** Checks the events of a whole object stream: partials monotone and changing, the last equal to the value, then Done. */
const expectMonotone = <A, I>(events: ReadonlyArray<ObjectStreamEvent<A, I>>, value: unknown) => {
  const partials = events.filter((event) => event._tag === "Partial").map((event) => event.partial as unknown)
  const done = events.at(-1)
  expect(done?._tag).toBe("Done")
  expect(events.filter((event) => event._tag === "Done")).toHaveLength(1)
  expect(partials.length).toBeGreaterThan(0)
  for (let i = 1; i < partials.length; i++) {
    expect(extendsValue(partials[i - 1], partials[i]), JSON.stringify(partials.slice(i - 1, i + 1))).toBe(true)
    // emitted only when changed
    expect(JSON.stringify(partials[i])).not.toBe(JSON.stringify(partials[i - 1]))
  }
  expect(partials.at(-1)).toStrictEqual(value)
  if (done?._tag === "Done") expect(done.result.value).toStrictEqual(value)
}

const withBackend = <A, E>(backend: Backend, f: (server: FakeProvider.FakeProvider) => Effect.Effect<A, E, Llm.Llm>) =>
  Effect.scoped(Effect.gen(function*() {
    const server = yield* FakeProvider.make
    return yield* f(server).pipe(Effect.provide(backend.layer(server.url)))
  }))

const collect = <A, E, R>(stream: Stream.Stream<A, E, R>) => Effect.map(Stream.runCollect(stream), Chunk.toArray)

for (const backend of backends) {
  describe(`streamObject: ${backend.name}`, () => {
    for (const chunkSize of [1, 3, 64]) {
      it.live(`streams monotone partials ending in the decoded value (deltas of ${chunkSize})`, () =>
        withBackend(backend, (server) =>
          Effect.gen(function*() {
            server.enqueue(valueReply(backend, recipe, "output", chunkSize))
            const events = yield* collect(Llm.streamObject(ask, Recipe))
            const { note: _, ...value } = recipe
            expectMonotone(events, value)
            const done = events.at(-1)!
            if (done._tag !== "Done") throw new Error("no Done")
            expect(JSON.parse(done.result.text)).toStrictEqual(recipe)
            expect(done.result.finishReason).toBe("stop")
            expect(done.result.metadata.provider).toBe(backend.provider)
            // the request asked for the schema, streamed
            const body = server.requests[0]!.body as Record<string, unknown>
            expect(body.stream).toBe(true)
            expect(JSON.stringify(body)).toContain("\"steps\"")
            // no partial names `note`: strict mode's null is read as absent in partials too
            for (const event of events) if (event._tag === "Partial") expect(event.partial).not.toHaveProperty("note")
          })))
    }

    it.live("elements: each complete element once, decoded by the element's Schema, then Done", () =>
      withBackend(backend, (server) =>
        Effect.gen(function*() {
          const Step = Schema.Struct({ say: Schema.String, pause: Schema.optional(Schema.Number) })
          const steps = [{ say: "Hello", pause: null }, { say: "there", pause: 2 }, { say: "friend", pause: null }]
          server.enqueue(valueReply(backend, { value: steps }, "output", 5))
          const events = yield* collect(Llm.streamObject(ask, Schema.Array(Step), { elements: true }))
          expect(events.map((event) => event._tag)).toStrictEqual(["Element", "Element", "Element", "Done"])
          expect(events.slice(0, 3)).toStrictEqual([
            { _tag: "Element", index: 0, element: { say: "Hello" } },
            { _tag: "Element", index: 1, element: { say: "there", pause: 2 } },
            { _tag: "Element", index: 2, element: { say: "friend" } }
          ])
          const done = events[3]!
          if (done._tag === "Done") {
            expect(done.result.value).toStrictEqual([{ say: "Hello" }, { say: "there", pause: 2 }, { say: "friend" }])
          }
        })))

    it.live("an element that fails its Schema fails the stream at once, after the good ones", () =>
      withBackend(backend, (server) =>
        Effect.gen(function*() {
          server.enqueue(valueReply(backend, { value: ["ok", 7, "late"] }, "output", 2))
          const seen: Array<unknown> = []
          const error = yield* Effect.flip(
            Stream.runForEach(
              Llm.streamObject(ask, Schema.Array(Schema.String), { elements: true }),
              (event) => Effect.sync(() => seen.push(event))
            )
          )
          expect(seen).toStrictEqual([{ _tag: "Element", index: 0, element: "ok" }])
          expect(error._tag).toBe("LlmOutputError")
          if (error._tag === "LlmOutputError") {
            expect(error.reason).toBe("invalid")
            expect(error.issue).toContain("element 1")
            expect(error.text).toContain("[\"ok\",7")
          }
        })))

    it.live("a value that fails the Schema fails with LlmOutputError after the partials, with the raw text", () =>
      withBackend(backend, (server) =>
        Effect.gen(function*() {
          const wrong = { title: "Soup", minutes: "ten", steps: [] }
          server.enqueue(valueReply(backend, wrong))
          const seen: Array<ObjectStreamEvent<unknown, unknown>> = []
          const error = yield* Effect.flip(
            Stream.runForEach(Llm.streamObject(ask, Recipe), (event) => Effect.sync(() => seen.push(event)))
          )
          expect(seen.length).toBeGreaterThan(0)
          expect(seen.every((event) => event._tag === "Partial")).toBe(true)
          expect(error._tag).toBe("LlmOutputError")
          if (error._tag === "LlmOutputError") {
            expect(JSON.parse(error.text)).toStrictEqual(wrong)
            expect(error.issue).toContain("\"ten\"")
          }
        })))

    it.live("a refusal fails with reason refused", () =>
      withBackend(backend, (server) =>
        Effect.gen(function*() {
          server.enqueue(
            backend.protocol === "messages"
              ? { kind: "reply", text: "No.", finishReason: "content_filter" }
              : { kind: "reply", refusal: "I can't help with that.", chunkSize: 5 }
          )
          const error = yield* Effect.flip(Stream.runDrain(Llm.streamObject(ask, Recipe)))
          expect(error._tag).toBe("LlmOutputError")
          if (error._tag === "LlmOutputError") {
            expect(error.reason).toBe("refused")
            expect(error.text).toBe(backend.protocol === "messages" ? "No." : "I can't help with that.")
          }
        })))

    it.live("interrupting the consumer mid-stream closes the request", () =>
      withBackend(backend, (server) =>
        Effect.gen(function*() {
          server.enqueue({ ...(valueReply(backend, recipe, "output", 3) as FakeProvider.Reply), stallAfterEvents: 12 })
          const first = yield* Stream.runHead(Llm.streamObject(ask, Recipe))
          expect(first._tag).toBe("Some")
          yield* Effect.promise(() => server.waitForClientClose(1, 10_000))
          expect(server.requests[0]!.closedByClient).toBe(true)
          // and by fiber interruption, too
          server.enqueue({ ...(valueReply(backend, recipe, "output", 3) as FakeProvider.Reply), stallAfterEvents: 12 })
          const fiber = yield* Effect.fork(Stream.runDrain(Llm.streamObject(ask, Recipe)))
          yield* Effect.promise(() => server.waitForRequests(2, 10_000))
          yield* Fiber.interrupt(fiber)
          yield* Effect.promise(() => server.waitForClientClose(2, 10_000))
        })))

    it.live("elements needs an array Schema: a typed error, nothing sent", () =>
      withBackend(backend, (server) =>
        Effect.gen(function*() {
          const error = yield* Effect.flip(Stream.runDrain(Llm.streamObject(ask, Recipe, { elements: true })))
          expect(error._tag).toBe("LlmInvalidRequestError")
          expect(error.message).toContain("needs an array Schema")
          expect(server.requests).toHaveLength(0)
        })))
  })
}

/** Chat Completions SSE bytes of a reply whose text is `text`, in deltas of `size`. */
const chatStream = (text: string, size: number): string => {
  const frame = (delta: object, finish: string | null) =>
    `data: ${
      JSON.stringify({
        id: "chatcmpl-1",
        object: "chat.completion.chunk",
        model: "m",
        choices: [{ index: 0, delta, finish_reason: finish }]
      })
    }\n\n`
  const out = [frame({ role: "assistant", content: "" }, null)]
  for (let i = 0; i < text.length; i += size) out.push(frame({ content: text.slice(i, i + size) }, null))
  out.push(frame({}, "stop"), "data: [DONE]\n\n")
  return out.join("")
}

/** `body` cut into writes at the given points. */
const cutAt = (body: string, points: ReadonlyArray<number>): Array<string> => {
  const at = [...new Set(points.map((p) => p % body.length))].filter((p) => p > 0).sort((a, b) => a - b)
  const out: Array<string> = []
  let start = 0
  for (const point of at) {
    out.push(body.slice(start, point))
    start = point
  }
  out.push(body.slice(start))
  return out
}

describe("streamObject under every chunking (property)", () => {
  /** Anthropic's recorded stream of a tool input ({"location": "San Francisco"}), read as the output tool's. */
  const recorded = streamScript(readFixture("anthropic/anthropic-json-other-tool.1.chunks.txt"), {
    framing: "lines",
    protocol: "messages"
  }, { split: "whole" }).chunks.join("")
  const Weather = Schema.Struct({ location: Schema.String })

  const replay = (layer: Layer.Layer<Llm.Llm>, server: FakeProvider.FakeProvider, writes: ReadonlyArray<string>) => {
    server.enqueue({ kind: "raw", headers: { "content-type": "text/event-stream" }, chunks: writes })
    return Effect.runPromise(collect(Llm.streamObject(ask, Weather, { name: "weather" })).pipe(Effect.provide(layer)))
  }

  it("Anthropic's recorded output-tool stream: monotone partials ending in the value", async () => {
    const server = await FakeProvider.start()
    try {
      const layer = backends.find((b) => b.name === "anthropic")!.layer(server.url)
      await fc.assert(
        fc.asyncProperty(fc.array(fc.nat(), { maxLength: 25 }), async (points) => {
          const events = await replay(layer, server, cutAt(recorded, points))
          expectMonotone(events, { location: "San Francisco" })
        }),
        { numRuns: 40 }
      )
    } finally {
      await server.close()
    }
  })

  it("a Chat Completions stream: monotone partials ending in the value", async () => {
    const server = await FakeProvider.start()
    try {
      const layer = Local.layer({ baseUrl: server.url, model: "m" })
      await fc.assert(
        fc.asyncProperty(
          fc.integer({ min: 1, max: 9 }),
          fc.array(fc.nat(), { maxLength: 25 }),
          async (size, points) => {
            const body = chatStream("{\"location\": \"San Francisco, \\\"SF\\\" \\u00e9\"}", size)
            server.enqueue({
              kind: "raw",
              headers: { "content-type": "text/event-stream" },
              chunks: cutAt(body, points)
            })
            const events = await Effect.runPromise(
              collect(Llm.streamObject(ask, Weather)).pipe(Effect.provide(layer))
            )
            expectMonotone(events, { location: "San Francisco, \"SF\" é" })
          }
        ),
        { numRuns: 40 }
      )
    } finally {
      await server.close()
    }
  })
})

describe("streamObject: Anthropic's recorded refusal, and a fallback chain", () => {
  it.live("the recorded classifier refusal is refused", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      server.enqueue(streamScript(
        readFixture("peers/vercel-ai/vercel-ai/packages/anthropic/src/__fixtures__/anthropic-refusal.chunks.txt"),
        { framing: "lines", protocol: "messages" }
      ))
      const anthropic = backends.find((b) => b.name === "anthropic")!
      const error = yield* Effect.flip(
        Stream.runDrain(Llm.streamObject(ask, Recipe)).pipe(Effect.provide(anthropic.layer(server.url)))
      )
      expect(error._tag).toBe("LlmOutputError")
      if (error._tag === "LlmOutputError") {
        expect(error.reason).toBe("refused")
        expect(error.text).toBe("")
        expect(error.model).toBe("claude-fable-5")
      }
    })))

  it.live("a dead local server falls back to Anthropic, which answers with the object through its output tool", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      server.enqueue({ kind: "reset" }, {
        kind: "reply",
        toolCalls: [{ name: "output", arguments: { title: "Tea", minutes: 3, steps: ["boil"] } }]
      })
      const anthropic = backends.find((b) => b.name === "anthropic")!
      const layer = Fallback.layer([
        Local.layer({ baseUrl: server.url, model: "m", retry: { maxRetries: 0 } }),
        anthropic.layer(server.url)
      ])
      const events = yield* collect(Llm.streamObject(ask, Recipe)).pipe(Effect.provide(layer))
      const done = events.at(-1)!
      expect(done._tag).toBe("Done")
      if (done._tag === "Done") {
        expect(done.result.value).toStrictEqual({ title: "Tea", minutes: 3, steps: ["boil"] })
        expect(done.result.metadata.provider).toBe("anthropic")
      }
      expect(server.requests.map((request) => request.protocol)).toStrictEqual(["chat", "messages"])
    })))
})
