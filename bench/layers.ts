/**
 * The layers users stack, in process (no network): CPU per stream of each
 * layered path next to bare `Llm.streamText`, the same paths as the
 * `--layered` clients of the benchmark (`bench/clients/effectLlmLayered.ts`),
 * with the cost of building a conversation apart from the cost of a turn.
 * A fake undici dispatcher answers every request from memory (Chat
 * Completions, the bench's bodies: the plain reply, or a tool call when the
 * request offers tools and carries no result yet).
 *
 *   npx tsx bench/layers.ts [--paced] [--calls N] [--only TEXT]
 *
 * `--paced` delivers each event in its own macrotask (the paced scenario's
 * one event per network read); the figures are then per event.
 *
 * Rows: bare `Llm.streamText`; `Conversation.make` alone (its scope opened
 * and closed); `Conversation.sendStream` and `Conversation.speak` (a sink
 * that does nothing) of a fresh conversation per stream, as the benchmark
 * client does, and of one reused conversation keeping one turn
 * (`maxTurns: 1`, so the history does not grow); `Toolkit.stream` with one
 * tool step, beside two bare streams (what its two model calls cost alone);
 * `LlmStream.sentences` of `Llm.stream`.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import type { Dispatcher } from "undici"
import {
  Conversation,
  ConversationContext,
  HttpTransport,
  Llm,
  LlmStream,
  Local,
  Message,
  Tool,
  Toolkit
} from "../src/index.js"
import { benchTool, expectedText, prompt, replies, toolCallReply } from "./payloads.js"

const argv = process.argv.slice(2)
const option = (name: string): string | undefined => {
  const at = argv.indexOf(`--${name}`)
  return at < 0 ? undefined : argv[at + 1]
}
const paced = argv.includes("--paced")
const calls = Number(option("calls") ?? (paced ? 100 : 2000))
const only = option("only")
const warmup = Number(option("warmup") ?? calls / 4)
const rounds = Number(option("rounds") ?? 3)

const plain = replies.chat.events.map((event) => Buffer.from(event))
const toolCall = toolCallReply.events.map((event) => Buffer.from(event))
const whole = (events: ReadonlyArray<Buffer>) => Buffer.concat(events)
const plainWhole = whole(plain)
const toolCallWhole = whole(toolCall)
const sseHeaders = { "content-type": "text/event-stream", "x-request-id": "r" }
const controller = { aborted: false, paused: false, reason: null, abort() {}, pause() {}, resume() {} }

/** `dispatch` as effect-llm's transport calls it, answering from memory on the next microtask (or paced). */
const dispatcher = {
  dispatch: (options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler) => {
    const body = String(options.body)
    const calling = body.includes("\"tools\"") && !body.includes("\"role\":\"tool\"")
    const events = calling ? toolCall : plain
    queueMicrotask(() => {
      handler.onRequestStart?.(controller, {})
      handler.onResponseStart?.(controller, 200, sseHeaders, "OK")
      if (paced) {
        let next = 0
        const deliver = () => {
          if (next < events.length) {
            handler.onResponseData?.(controller, events[next++]!)
            setImmediate(deliver)
          } else handler.onResponseEnd?.(controller, {})
        }
        return void setImmediate(deliver)
      }
      queueMicrotask(() => {
        handler.onResponseData?.(controller, calling ? toolCallWhole : plainWhole)
        handler.onResponseEnd?.(controller, {})
      })
    })
    return true
  }
}

const backend = Local.layer({ baseUrl: "http://127.0.0.1:1", model: "m" }).pipe(
  Layer.provide(HttpTransport.layerUndici({ dispatcher: dispatcher as unknown as Dispatcher }))
)
const runtime = ManagedRuntime.make(backend)
const messages = [Message.system(prompt.system), Message.user(prompt.user)]
const kit = Toolkit.make(
  Tool.make(benchTool.name, {
    description: "Looks a word up.",
    parameters: Schema.Struct({ query: Schema.String }),
    handler: ({ query }) => Effect.succeed({ found: query })
  })
)

const check = (text: string) =>
  text === expectedText ? Effect.void : Effect.dieMessage(`wrong text: ${text.slice(0, 60)}…`)
const textOf = <R>(events: Stream.Stream<LlmStream.StreamEvent, unknown, R>) =>
  Effect.flatMap(Stream.runFold(LlmStream.textDeltas(events), "", (acc, text) => acc + text), check)
const streamText = Effect.flatMap(Stream.runFold(Llm.streamText(messages), "", (acc, text) => acc + text), check)

const fresh = Conversation.make(ConversationContext.make({ systemMessage: prompt.system }))
/** One conversation kept for every call of a row: one turn kept, so its history stays one turn long. */
const reused = runtime.runSync(
  Effect.scoped(Conversation.make(ConversationContext.make({ systemMessage: prompt.system, maxTurns: 1 })))
)
const sendStream = (c: Conversation.Conversation.Service) =>
  textOf(c.sendStream(prompt.user) as Stream.Stream<LlmStream.StreamEvent, unknown, never>)
const speak = (c: Conversation.Conversation.Service) =>
  Effect.flatMap(c.speak(prompt.user, { sink: () => Effect.void }), (result) => check(result.content))

const rows: ReadonlyArray<readonly [string, Effect.Effect<void, unknown, Llm.Llm>]> = [
  ["Llm.streamText", streamText],
  ["Llm.stream, its text deltas", textOf(Llm.stream(messages))],
  [
    // every event built (no text-only projection), as the tool loop reads a step
    "Llm.stream, every event",
    Effect.suspend(() => {
      let text = ""
      return Effect.flatMap(
        Stream.runForEach(Llm.stream(messages), (event) =>
          Effect.sync(() => {
            if (event._tag === "TextDelta") text += event.text
          })),
        () => check(text)
      )
    })
  ],
  [
    "Toolkit.stream, no tool",
    textOf(Toolkit.stream(messages, Toolkit.make()) as Stream.Stream<LlmStream.StreamEvent, unknown, never>)
  ],
  ["Conversation.make alone", Effect.scoped(Effect.asVoid(fresh))],
  ["Conversation.sendStream, fresh", Effect.scoped(Effect.flatMap(fresh, sendStream))],
  ["Conversation.sendStream, reused", sendStream(reused)],
  ["Conversation.speak, fresh", Effect.scoped(Effect.flatMap(fresh, speak))],
  ["Conversation.speak, reused", speak(reused)],
  ["Llm.streamText twice", Effect.zipRight(streamText, streamText)],
  [
    "Toolkit.stream, one tool step",
    textOf(Toolkit.stream(messages, kit) as Stream.Stream<LlmStream.StreamEvent, unknown, never>)
  ],
  [
    "LlmStream.sentences",
    Effect.flatMap(Stream.runCollect(LlmStream.sentences(Llm.stream(messages))), (chunk) => check([...chunk].join(" ")))
  ]
]

/** CPU microseconds per call of `task`, after a warm-up. */
const cpuPerCall = async (task: Effect.Effect<void, unknown, Llm.Llm>): Promise<number> => {
  for (let i = 0; i < warmup; i++) await runtime.runPromise(task)
  const start = process.cpuUsage()
  for (let i = 0; i < calls; i++) await runtime.runPromise(task)
  const used = process.cpuUsage(start)
  return (used.user + used.system) / calls
}

const main = async () => {
  console.log(
    `chat, ${plain.length} events per stream${
      paced ? ", one per macrotask" : ""
    }, ${calls} calls per row, CPU µs per call (best of ${rounds})${paced ? " and per event" : ""}`
  )
  for (const [label, task] of rows) {
    // a label given whole names that row alone
    if (only !== undefined && !(rows.some(([l]) => l === only) ? label === only : label.includes(only))) continue
    const measured: Array<number> = []
    for (let round = 0; round < rounds; round++) measured.push(await cpuPerCall(task))
    const best = Math.min(...measured)
    console.log(
      `${label.padEnd(40)} ${best.toFixed(0).padStart(7)}${paced ? (best / plain.length).toFixed(2).padStart(9) : ""}`
    )
  }
  await runtime.dispose()
}

main()
