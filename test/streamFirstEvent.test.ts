/**
 * A stream's first events go out alone, over real loopback HTTP: when a
 * whole reply arrives in one read, the consumer gets its first delta as a
 * chunk of its own, before the rest of the read is decoded, and the rest
 * follows in batches. Under every chunking the consumer gets the same
 * events and the same text; a consumer that stops after the first delta
 * gets it, and nothing else happens.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Stream from "effect/Stream"
import * as Llm from "../src/Llm.js"
import type { StreamEvent } from "../src/Stream.js"
import * as FakeProvider from "./support/FakeProvider.js"
import { chunkings, hi, layerFor, type Protocol, raw } from "./support/replies.js"

const words = Array.from({ length: 40 }, (_, i) => `w${i} `)

const chatChunk = (delta: Record<string, unknown>, finish: string | null = null) =>
  `data: ${
    JSON.stringify({
      id: "c",
      object: "chat.completion.chunk",
      model: "m",
      choices: [{ index: 0, delta, finish_reason: finish }]
    })
  }\n\n`

const messagesEvent = (type: string, data: Record<string, unknown>) =>
  `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`

/** A reply of `words` (after `reasoning`, when given) in each wire format, bookkeeping events included. */
const bodyOf = (protocol: Protocol, reasoning: ReadonlyArray<string> = []): string =>
  protocol === "chat"
    ? [
      chatChunk({ role: "assistant", content: "" }),
      ": keep-alive\n\n",
      ...reasoning.map((text) => chatChunk({ reasoning_content: text })),
      ...words.map((text) => chatChunk({ content: text })),
      chatChunk({}, "stop"),
      "data: [DONE]\n\n"
    ].join("")
    : [
      messagesEvent("message_start", {
        message: {
          id: "msg",
          type: "message",
          role: "assistant",
          model: "claude-x",
          content: [],
          usage: { input_tokens: 3, output_tokens: 1 }
        }
      }),
      messagesEvent("ping", {}),
      ...(reasoning.length === 0 ? [] : [
        messagesEvent("content_block_start", { index: 0, content_block: { type: "thinking", thinking: "" } }),
        ...reasoning.map((thinking) =>
          messagesEvent("content_block_delta", { index: 0, delta: { type: "thinking_delta", thinking } })
        ),
        messagesEvent("content_block_delta", { index: 0, delta: { type: "signature_delta", signature: "sig" } }),
        messagesEvent("content_block_stop", { index: 0 })
      ]),
      messagesEvent("content_block_start", {
        index: reasoning.length === 0 ? 0 : 1,
        content_block: { type: "text", text: "" }
      }),
      ...words.map((text) =>
        messagesEvent("content_block_delta", {
          index: reasoning.length === 0 ? 0 : 1,
          delta: { type: "text_delta", text }
        })
      ),
      messagesEvent("content_block_stop", { index: reasoning.length === 0 ? 0 : 1 }),
      messagesEvent("message_delta", { delta: { stop_reason: "end_turn" }, usage: { output_tokens: 40 } }),
      messagesEvent("message_stop", {})
    ].join("")

/** The chunks a stream handed its consumer, as arrays. */
const chunksOf = <A>(stream: Stream.Stream<A, unknown, Llm.Llm>) =>
  Effect.map(Stream.runCollect(Stream.chunks(stream)), (chunks) => Chunk.toArray(chunks).map(Chunk.toArray))

/** An event without its metadata's latencies and request id, which differ from call to call. */
const comparable = (event: StreamEvent) =>
  event._tag === "Finish"
    ? { ...event, metadata: { ...event.metadata, latencyMillis: 0, firstTokenMillis: 0, requestId: "" } }
    : event

const protocols: ReadonlyArray<Protocol> = ["chat", "messages"]

describe("a stream's first events go out alone", () => {
  for (const protocol of protocols) {
    it.live(`${protocol}: under every chunking the first delta is a chunk of its own, and the events are the same`, () =>
      Effect.scoped(Effect.gen(function*() {
        const server = yield* FakeProvider.make
        const layer = layerFor(protocol, server.url)
        const body = bodyOf(protocol)
        const runs: Array<Array<unknown>> = []
        for (const chunks of chunkings(body)) {
          server.setDefault(raw(chunks))
          const handed = yield* chunksOf(Llm.stream(hi)).pipe(Effect.provide(layer))
          const first = handed.find((chunk) => chunk.length > 0)
          expect(first).toEqual([{ _tag: "TextDelta", text: "w0 " }])
          const events = handed.flat()
          expect(events.flatMap((event) => event._tag === "TextDelta" ? [event.text] : [])).toEqual(words)
          expect(events.at(-1)?._tag).toBe("Finish")
          runs.push(events.map(comparable))
        }
        // the whole body in one write: the first delta alone, then the rest of the read in one batch
        server.setDefault(raw([body]))
        const whole = yield* chunksOf(Llm.stream(hi)).pipe(Effect.provide(layer))
        expect(whole.map((chunk) => chunk.length)).toEqual([1, words.length])
        expect(runs[1]).toEqual(runs[0])
        expect(runs[2]).toEqual(runs[0])
      })))

    it.live(`${protocol}: the text alone, after reasoning that arrived in the same read, starts with the first delta alone`, () =>
      Effect.scoped(Effect.gen(function*() {
        const server = yield* FakeProvider.make
        const layer = layerFor(protocol, server.url)
        for (const chunks of chunkings(bodyOf(protocol, ["think ", "more "]))) {
          server.setDefault(raw(chunks))
          const texts = yield* chunksOf(Llm.streamText(hi)).pipe(Effect.provide(layer))
          expect(texts.find((chunk) => chunk.length > 0)).toEqual(["w0 "])
          expect(texts.flat()).toEqual(words)
          const events = (yield* chunksOf(Llm.stream(hi)).pipe(Effect.provide(layer))).flat()
          expect(events.flatMap((event) => event._tag === "ReasoningDelta" ? [event.text] : [])).toEqual([
            "think ",
            "more "
          ])
        }
      })))

    it.live(`${protocol}: a consumer that stops or is interrupted after the first delta gets it alone, and the next call is answered`, () =>
      Effect.scoped(Effect.gen(function*() {
        const server = yield* FakeProvider.make
        const layer = layerFor(protocol, server.url)
        for (const chunks of chunkings(bodyOf(protocol))) {
          server.setDefault(raw(chunks))
          // the sizes of the chunks the stream handed over
          const sizes: Array<number> = []
          const texts = Stream.mapChunks(Llm.streamText(hi), (chunk) => {
            sizes.push(chunk.length)
            return chunk
          })
          const first = yield* Stream.runCollect(Stream.take(texts, 1)).pipe(Effect.provide(layer))
          expect(Chunk.toArray(first)).toEqual(["w0 "])
          expect(sizes).toEqual([1])
          sizes.length = 0
          const seen: Array<string> = []
          const exit = yield* Effect.exit(
            Stream.runForEach(texts, (text) => Effect.zipRight(Effect.sync(() => seen.push(text)), Effect.interrupt))
          ).pipe(Effect.provide(layer))
          expect(Exit.isInterrupted(exit)).toBe(true)
          expect(seen).toEqual(["w0 "])
          expect(sizes).toEqual([1])
          const next = yield* Stream.runCollect(Llm.streamText(hi)).pipe(Effect.provide(layer))
          expect(Chunk.toArray(next)).toEqual(words)
        }
      })))
  }
})
