/**
 * Where the floor is: CPU per call of effect-llm next to the least any Effect
 * Stream costs and to the bare @effect/platform client, with no network at
 * all. A fake undici dispatcher answers every request from memory (the same
 * bodies as the fake server), through `request` for the platform's
 * `NodeHttpClient.makeUndici` (its response wrapper and Node stream adapter
 * run) and through `dispatch` for effect-llm's default transport; only the
 * socket is missing.
 *
 *   npx tsx bench/floor.ts [--short | --paced] [--protocol chat|messages] [--calls N] [--concurrency N] [--only TEXT]
 *
 * `--short` streams a reply with a single text delta, so a stream's fixed cost
 * shows; by default the reply has 200 deltas. `--paced` delivers each event
 * of the reply in its own macrotask, as the paced scenario does one per
 * network read, and compares plain callbacks, the least Effect stream and
 * `Llm.streamText` per event. Rows (without `--paced`):
 * - `Stream.runDrain(Stream.fromChunk(…))`: running any Effect stream at all;
 * - one async read, then one chunk of texts: the least a Stream API fed by a
 *   socket costs;
 * - the bare platform call (`execute`, then `arrayBuffer` or `stream` run with
 *   `Stream.runForEach`), with its HTTP span off as effect-llm runs it, and on;
 * - effect-llm's provider stream consumed directly (`llm.stream`);
 * - `Llm.stream` and `Llm.streamText`, the public accessors, which read the
 *   service from the context (and keep only text deltas), and `Llm.streamText`
 *   through a `Fallback` of the same backend twice (the first answers);
 * - `Llm.streamText` of a structured-output reply (its text a JSON object in
 *   200 deltas) and `Llm.streamObject` of the same reply (partials, then the
 *   decoded value): what the partial values cost per chunk (also `--paced`);
 * - a whole reply by plain code (`dispatch`, the body gathered, `JSON.parse`)
 *   and inside one `Effect.promise` (the floor of `complete`), effect-llm's
 *   transport alone (an attempt's scope, the send, the whole body), without
 *   the provider on top, and `Llm.complete`; `--concurrency 64` keeps that
 *   many calls in flight, as the `complete-64` scenario does;
 * - tracing: `Llm.complete` and `Llm.streamText` as run by default (Effect's
 *   built-in tracer, no tracer installed), with tracing turned off outright
 *   (`Effect.withTracerEnabled(false)`: no span can be made at all), and with
 *   the OpenTelemetry SDK's tracer installed (`@effect/opentelemetry`, every
 *   span recorded, none exported). The first two are equal when tracing
 *   costs nothing without a tracer.
 */
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import { NoopSpanProcessor } from "@opentelemetry/sdk-trace-base"
import * as Channel from "effect/Channel"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as JSONSchema from "effect/JSONSchema"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { Readable } from "node:stream"
import type { Dispatcher } from "undici"
import { Anthropic, Fallback, HttpTransport, Llm, Local, Message } from "../src/index.js"
import { objectReplies, type Protocol, replies } from "./payloads.js"
import { pool } from "./pool.js"

const argv = process.argv.slice(2)
const option = (name: string): string | undefined => {
  const at = argv.indexOf(`--${name}`)
  return at < 0 ? undefined : argv[at + 1]
}
const protocol = (option("protocol") ?? "chat") as Protocol
const short = argv.includes("--short")
/** Each SSE event in its own macrotask, as the paced scenario's one event per network read. */
const paced = argv.includes("--paced")
/**
 * Time to the first text delta of a whole stream delivered in one read (the
 * headers and every event in one macrotask, as the `ttft-delayed` scenario's
 * one write after a pause): µs from that read to the first delta, median.
 */
const firstToken = argv.includes("--first-token")
const calls = Number(option("calls") ?? (paced ? 200 : firstToken ? 2000 : 4000))
/** How many calls are in flight at once (the `complete-64` scenario's 64, say); 1 by default. */
const concurrency = Number(option("concurrency") ?? 1)
/** Only the rows whose label contains this text (to profile one of them); with `--exact`, the row so named. */
const only = option("only")
const exact = argv.includes("--exact")
const picked = (label: string) => only === undefined || (exact ? label === only : label.includes(only))

const reply = replies[protocol]
const sse = Buffer.from(
  short ? [...reply.events.slice(0, reply.firstTextEvent), ...reply.events.slice(-3)].join("") : reply.events.join("")
)
const json = Buffer.from(reply.json)
const events = reply.events.map((event) => Buffer.from(event))
/** The structured-output reply (its text a JSON object in as many deltas), for the `streamObject` rows. */
const objectReply = objectReplies[protocol === "messages" ? "messages" : "chat"]
const objectSse = Buffer.from(objectReply.events.join(""))
const objectEvents = objectReply.events.map((event) => Buffer.from(event))
/** A request for a structured output: OpenAI's `response_format`, or Anthropic's output tool. */
const isObjectRequest = (body: string | Uint8Array) =>
  Buffer.from(body).includes("\"response_format\"") || Buffer.from(body).includes("\"tool_choice\"")
const ObjectSchema = Schema.Struct({ title: Schema.String, words: Schema.Array(Schema.String) })

/** A body as undici hands it over: a Node readable that can also be read whole. */
const bodyOf = (bytes: Buffer): Readable => {
  const readable = Readable.from([bytes], { objectMode: false })
  return Object.assign(readable, {
    arrayBuffer: async (): Promise<ArrayBuffer> => {
      const parts: Array<Buffer> = []
      for await (const part of readable) parts.push(part as Buffer)
      const whole = Buffer.concat(parts)
      return whole.buffer.slice(whole.byteOffset, whole.byteOffset + whole.byteLength) as ArrayBuffer
    }
  })
}

const sseHeaders = { "content-type": "text/event-stream", "x-request-id": "r" }
const jsonHeaders = { "content-type": "application/json", "content-length": String(json.length), "x-request-id": "r" }
const isStream = (body: string | Uint8Array) => Buffer.from(body).includes("\"stream\":true")

/** When the last `--first-token` read was delivered (`performance.now()`). */
let readAt = 0

/** The controller a handler of undici's `dispatch` gets; nothing here pauses or aborts. */
const controller = { aborted: false, paused: false, reason: null, abort() {}, pause() {}, resume() {} }

/**
 * The parts of undici's `Dispatcher` in use: `request` (what
 * `NodeHttpClient.makeUndici` calls) and `dispatch` (what effect-llm's
 * default transport calls), answering on the next microtask as a socket would
 * on its next read.
 */
const dispatcher = {
  request: async (options: { readonly body: Uint8Array }) =>
    isStream(options.body)
      ? { statusCode: 200, headers: sseHeaders, body: bodyOf(sse) }
      : { statusCode: 200, headers: jsonHeaders, body: bodyOf(json) },
  dispatch: (options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler) => {
    const stream = isStream(options.body as string)
    const object = stream && isObjectRequest(options.body as string)
    const pacedEvents = object ? objectEvents : events
    if (firstToken && stream) {
      // the whole response in one later read: headers, every event and the end in one macrotask
      setImmediate(() => {
        readAt = performance.now()
        handler.onRequestStart?.(controller, {})
        handler.onResponseStart?.(controller, 200, sseHeaders, "OK")
        handler.onResponseData?.(controller, sse)
        handler.onResponseEnd?.(controller, {})
      })
      return true
    }
    queueMicrotask(() => {
      handler.onRequestStart?.(controller, {})
      handler.onResponseStart?.(controller, 200, stream ? sseHeaders : jsonHeaders, "OK")
      if (paced && stream) {
        let next = 0
        const deliver = () => {
          if (next < pacedEvents.length) {
            handler.onResponseData?.(controller, pacedEvents[next++]!)
            setImmediate(deliver)
          } else handler.onResponseEnd?.(controller, {})
        }
        return void setImmediate(deliver)
      }
      queueMicrotask(() => {
        handler.onResponseData?.(controller, object ? objectSse : stream ? sse : json)
        handler.onResponseEnd?.(controller, {})
      })
    })
    return true
  }
}
const client = NodeHttpClient.makeUndici(dispatcher as unknown as Parameters<typeof NodeHttpClient.makeUndici>[0])

const backend = protocol === "chat"
  ? Local.layer({ baseUrl: "http://127.0.0.1:1", model: "m" })
  : Anthropic.layer({ baseUrl: "http://127.0.0.1:1", model: "m", apiKey: Redacted.make("k") })
const inMemory = HttpTransport.layerUndici({ dispatcher: dispatcher as unknown as Dispatcher })
const runtime = ManagedRuntime.make(backend.pipe(Layer.provide(inMemory)))
/** The same backend twice behind `Fallback`, the first answering: what a fallback chain adds. */
const fallback = ManagedRuntime.make(Fallback.layer([backend, backend]).pipe(Layer.provide(inMemory)))
const bare = ManagedRuntime.make(Layer.empty)
/** The same backend with the OpenTelemetry SDK's tracer installed: spans made and ended, exported nowhere. */
const otel = ManagedRuntime.make(
  backend.pipe(
    Layer.provide(inMemory),
    Layer.provideMerge(NodeSdk.layer(() => ({ spanProcessor: new NoopSpanProcessor() })))
  )
)
const messages = [Message.system("s"), Message.user("u")]
/** The object's reply as plain text: the same request (its response format), its text not parsed or decoded. */
const objectFormat = {
  responseFormat: {
    name: "output",
    schema: JSONSchema.make(ObjectSchema) as unknown as Record<string, unknown>
  }
}

const request = (stream: boolean) =>
  HttpClientRequest.post("http://127.0.0.1:1/v1/chat/completions").pipe(
    HttpClientRequest.bodyUnsafeJson({ model: "m", stream })
  )
const streamRequest = request(true)
const completeRequest = request(false)
const ignore = () => Effect.void
const oneChunk = Chunk.of(1)

/** effect-llm's default transport alone, as the providers call it: one attempt's scope, the send, the body. */
const transport = HttpTransport.undici({ dispatcher: dispatcher as unknown as Dispatcher })
const transportRequest = (stream: boolean) => ({
  method: "POST" as const,
  url: "http://127.0.0.1:1/v1/chat/completions",
  headers: { "content-type": "application/json" },
  body: JSON.stringify({ model: "m", stream })
})
const transportComplete = Effect.flatMap(
  Scope.make(),
  (scope) =>
    Effect.flatMap(transport.send(transportRequest(false), scope), (response) => response.bytes(1 << 25)).pipe(
      Effect.ensuring(Scope.close(scope, Exit.void))
    )
)

const platformStream = Stream.runForEach(
  Stream.unwrap(Effect.map(client.execute(streamRequest), (r) => r.stream)),
  ignore
)
const platformComplete = Effect.flatMap(client.execute(completeRequest), (r) => r.arrayBuffer)

/** The texts of the reply's deltas, as the decoder would produce them: the least any Stream API must deliver. */
const texts = Chunk.unsafeFromArray(Array.from({ length: short ? 1 : 200 }, (_, i) => `t${i}`))

/**
 * The least a Stream-returning API fed by a socket can cost: one stream whose
 * channel waits for one callback (the network read), writes the decoded
 * texts as one chunk, and ends; consumed with `Stream.runForEach`.
 */
const minimalSocketStream = Stream.fromChannel(
  Channel.zipRight(
    Channel.fromEffect(Effect.async<void>((resume) => queueMicrotask(() => resume(Effect.void)))),
    Channel.write(texts)
  )
)

/** A whole reply by plain code: `dispatch` with a handler gathering the body, then `TextDecoder` and `JSON.parse`. */
const completePlain = () =>
  new Promise<unknown>((resolve) => {
    const parts: Array<Buffer> = []
    dispatcher.dispatch({ origin: "http://127.0.0.1:1", path: "/v1/chat/completions", method: "POST", body: "{}" }, {
      onResponseData: (_, chunk) => void parts.push(chunk),
      onResponseEnd: () => resolve(JSON.parse(new TextDecoder().decode(Buffer.concat(parts))))
    })
  })

/** The same whole reply in the least Effect: one `Effect.promise` around it, run as every call here is. */
const completeMinimal = () => bare.runPromise(Effect.promise(completePlain))

/** The same paced events read with plain callbacks and `JSON.parse`, no Effect: what raw code pays. */
const pacedPlain = () =>
  new Promise<void>((resolve) => {
    let next = 0
    const deliver = () => {
      if (next === events.length) return resolve()
      const data = events[next++]!.toString().match(/^data: (\{.*\})$/m)
      if (data !== null) JSON.parse(data[1]!)
      setImmediate(deliver)
    }
    setImmediate(deliver)
  })

/** The same paced events through the least Effect stream: one async wait and one chunk per event. */
const pacedMinimal = () => {
  let next = 0
  const wait = Effect.async<void>((resume) => void setImmediate(() => resume(Effect.void)))
  const loop: Channel.Channel<Chunk.Chunk<string>, unknown, never, unknown, void, unknown> = Channel.suspend(() =>
    next === events.length
      ? Channel.void
      : Channel.zipRight(
        Channel.fromEffect(wait),
        Channel.suspend(() => Channel.zipRight(Channel.write(Chunk.of(String(events[next++]))), loop))
      )
  )
  return bare.runPromise(Stream.runForEach(Stream.fromChannel(loop), ignore))
}

/** The paced rows (`--paced`): CPU per stream, shown per event. */
const pacedRows: ReadonlyArray<readonly [string, () => Promise<unknown>]> = [
  ["plain callbacks + JSON.parse, no Effect", pacedPlain],
  ["least Effect stream: one async wait per event", pacedMinimal],
  [
    "effect-llm: llm.stream (provider, direct)",
    () => runtime.runPromise(Effect.flatMap(Llm.Llm, (llm) => Stream.runForEach(llm.stream(messages), ignore)))
  ],
  ["effect-llm: Llm.streamText", () => runtime.runPromise(Stream.runForEach(Llm.streamText(messages), ignore))],
  [
    "effect-llm: Fallback, Llm.streamText",
    () => fallback.runPromise(Stream.runForEach(Llm.streamText(messages), ignore))
  ],
  [
    "effect-llm: Llm.streamText, the object's reply",
    () => runtime.runPromise(Stream.runForEach(Llm.streamText(messages, objectFormat), ignore))
  ],
  [
    "effect-llm: Llm.streamObject (partials)",
    () => runtime.runPromise(Stream.runForEach(Llm.streamObject(messages, ObjectSchema), ignore))
  ]
]

/** The same whole read split by plain code (`JSON.parse` per event), its first text handed over at once: what raw pays. */
const firstPlain = () =>
  new Promise<number>((resolve) => {
    setImmediate(() => {
      const at = performance.now()
      let first = 0
      const text = new TextDecoder().decode(sse, { stream: true })
      let start = 0
      let end: number
      while ((end = text.indexOf("\n", start)) >= 0) {
        if (text.startsWith("data: ", start) && first === 0) {
          const data = text.slice(start + 6, end)
          if (data !== "[DONE]") {
            const parsed = JSON.parse(data) as { choices?: Array<{ delta?: { content?: string } }>; type?: string }
            if (parsed.choices?.[0]?.delta?.content || parsed.type === "content_block_delta") {
              first = performance.now()
            }
          }
        } else if (text.startsWith("data: {", start)) JSON.parse(text.slice(start + 6, end))
        start = end + 1
      }
      resolve(first - at)
    })
  })

/** µs from the read to the first text delta of `stream`, run in `on`. */
const firstOf = (
  on: ManagedRuntime.ManagedRuntime<Llm.Llm, never>,
  stream: Stream.Stream<string, unknown, Llm.Llm>
) => {
  let first = 0
  return on.runPromise(Stream.runForEach(stream, () =>
    Effect.sync(() => {
      if (first === 0) first = performance.now()
    }))).then(() => first - readAt)
}

/** The first-token rows (`--first-token`): µs from the one read to the first text delta. */
const firstTokenRows: ReadonlyArray<readonly [string, () => Promise<number>]> = [
  ["plain code: decode, split, JSON.parse, first text", firstPlain],
  ["effect-llm: Llm.streamText", () => firstOf(runtime, Llm.streamText(messages))],
  ["effect-llm: Fallback, Llm.streamText", () => firstOf(fallback, Llm.streamText(messages))]
]

/** The rows: a label and one call. */
const fastRows: ReadonlyArray<readonly [string, () => Promise<unknown>]> = [
  [
    "Stream.runDrain(Stream.fromChunk(one element))",
    () => bare.runPromise(Stream.runDrain(Stream.fromChunk(oneChunk)))
  ],
  [
    "one async read, one chunk of texts, runForEach",
    () => bare.runPromise(Stream.runForEach(minimalSocketStream, ignore))
  ],
  ["platform: execute + stream, HTTP span off", () => bare.runPromise(Effect.withTracerEnabled(platformStream, false))],
  ["platform: execute + stream, HTTP span on", () => bare.runPromise(platformStream)],
  [
    "effect-llm: llm.stream (provider, direct)",
    () => runtime.runPromise(Effect.flatMap(Llm.Llm, (llm) => Stream.runForEach(llm.stream(messages), ignore)))
  ],
  ["effect-llm: Llm.stream", () => runtime.runPromise(Stream.runForEach(Llm.stream(messages), ignore))],
  ["effect-llm: Llm.streamText", () => runtime.runPromise(Stream.runForEach(Llm.streamText(messages), ignore))],
  [
    "effect-llm: Fallback, Llm.streamText",
    () => fallback.runPromise(Stream.runForEach(Llm.streamText(messages), ignore))
  ],
  [
    "effect-llm: Llm.streamText, the object's reply",
    () => runtime.runPromise(Stream.runForEach(Llm.streamText(messages, objectFormat), ignore))
  ],
  [
    "effect-llm: Llm.streamObject (partials)",
    () => runtime.runPromise(Stream.runForEach(Llm.streamObject(messages, ObjectSchema), ignore))
  ],
  ["plain code: dispatch, gather, JSON.parse", completePlain],
  ["least Effect complete: one Effect.promise", completeMinimal],
  [
    "platform: execute + arrayBuffer, HTTP span off",
    () => bare.runPromise(Effect.withTracerEnabled(platformComplete, false))
  ],
  ["platform: execute + arrayBuffer, HTTP span on", () => bare.runPromise(platformComplete)],
  ["effect-llm transport: send + bytes, no provider", () => bare.runPromise(transportComplete)],
  ["effect-llm: Llm.complete", () => runtime.runPromise(Llm.complete(messages))],
  [
    "tracing off outright: Llm.complete",
    () => runtime.runPromise(Effect.withTracerEnabled(Llm.complete(messages), false))
  ],
  ["OpenTelemetry tracer: Llm.complete", () => otel.runPromise(Llm.complete(messages))],
  [
    "tracing off outright: Llm.streamText",
    () => runtime.runPromise(Effect.withTracerEnabled(Stream.runForEach(Llm.streamText(messages), ignore), false))
  ],
  ["OpenTelemetry tracer: Llm.streamText", () => otel.runPromise(Stream.runForEach(Llm.streamText(messages), ignore))]
]

/** CPU microseconds per call of `task`, after a warm-up. */
const cpuPerCall = async (task: () => Promise<unknown>): Promise<number> => {
  await pool(calls / 4, concurrency, task)
  const start = process.cpuUsage()
  await pool(calls, concurrency, task)
  const used = process.cpuUsage(start)
  return (used.user + used.system) / calls
}

/** The median of `task`'s result over `calls` calls, after a warm-up. */
const medianOf = async (task: () => Promise<number>): Promise<number> => {
  for (let i = 0; i < calls / 4; i++) await task()
  const samples: Array<number> = []
  for (let i = 0; i < calls; i++) samples.push(await task())
  samples.sort((a, b) => a - b)
  return samples[samples.length >> 1]! * 1000
}

const main = async () => {
  if (firstToken) {
    console.log(
      `${protocol}, 200 text deltas in one read, ${calls} streams per row, µs from the read to the first delta (median; best of 3)`
    )
    for (const [label, task] of firstTokenRows) {
      if (!picked(label)) continue
      const rounds: Array<number> = []
      for (let round = 0; round < 3; round++) rounds.push(await medianOf(task))
      console.log(`${label.padEnd(50)} ${Math.min(...rounds).toFixed(1).padStart(6)}`)
    }
    return dispose()
  }
  const rows = paced ? pacedRows : fastRows
  console.log(
    paced
      ? `${protocol}, ${events.length} events per stream, one per macrotask, ${calls} streams per row, CPU µs per event (best of 3)`
      : `${protocol}, ${
        short ? "one text delta" : "200 text deltas"
      } per stream, ${calls} calls per row, ${concurrency} in flight, CPU µs per call (best of 3)`
  )
  for (const [label, task] of rows) {
    if (!picked(label)) continue
    const rounds: Array<number> = []
    for (let round = 0; round < 3; round++) rounds.push(await cpuPerCall(task))
    const best = Math.min(...rounds) / (paced ? events.length : 1)
    console.log(`${label.padEnd(50)} ${best.toFixed(paced ? 2 : 0).padStart(6)}`)
  }
  return dispose()
}

const dispose = async () => {
  await runtime.dispose()
  await fallback.dispose()
  await bare.dispose()
  await otel.dispose()
}

main()
