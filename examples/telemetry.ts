/**
 * Telemetry: a short conversation (a streamed turn, then a turn with a tool
 * call) traced and measured through the OpenTelemetry SDK, installed with
 * `@effect/opentelemetry`. The console exporters print every span and, at
 * shutdown, every metric; the trace is then printed again as a tree.
 * Run: npx tsx examples/telemetry.ts
 */
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import { ConsoleMetricExporter, PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics"
import {
  ConsoleSpanExporter,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor
} from "@opentelemetry/sdk-trace-base"
import { Console, Effect, Layer, Schema, Stream } from "effect"
import { Conversation, Tool, Toolkit } from "../src/index.js"
import { describeBackend, exampleLlm } from "./support/backend.js"

const getWeather = Tool.make("get_weather", {
  description: "Get the current weather for a city",
  parameters: Schema.Struct({ city: Schema.String }),
  handler: ({ city }) => Effect.succeed({ city, celsius: 12, conditions: "light rain" })
})

/** The same spans, kept to print the tree at the end (read before the SDK shuts down). */
const kept = new InMemorySpanExporter()

const Otel = NodeSdk.layer(() => ({
  resource: { serviceName: "voice-assistant" },
  spanProcessor: [new SimpleSpanProcessor(new ConsoleSpanExporter()), new SimpleSpanProcessor(kept)],
  // exports once, when the SDK shuts down
  metricReader: new PeriodicExportingMetricReader({
    exporter: new ConsoleMetricExporter(),
    exportIntervalMillis: 3_600_000
  })
}))

/** A span's line in the tree: its name, duration, and attributes (an HTTP request's status only). */
const describe = (span: ReadableSpan): string => {
  const millis = span.duration[0] * 1000 + span.duration[1] / 1e6
  const attributes = Object.entries(span.attributes)
    .filter(([key]) => !span.name.startsWith("http.client") || key === "http.response.status_code")
    .map(([key, value]) => `${key}=${JSON.stringify(value)}`)
  const events = span.events.filter((event) => event.name.startsWith("effect_llm.")).map((event) =>
    `event ${event.name}`
  )
  return [`${span.name} (${millis.toFixed(1)} ms)`, ...attributes, ...events].join("\n")
}

/** Prints `spans` as a tree, children under their parent. */
const printTree = (spans: ReadonlyArray<ReadableSpan>) => {
  const lines: Array<string> = []
  const visit = (span: ReadableSpan, depth: number) => {
    const [first, ...rest] = describe(span).split("\n")
    const indent = "  ".repeat(depth)
    lines.push(`${indent}${depth === 0 ? "" : "└ "}${first}`)
    for (const line of rest) lines.push(`${indent}${depth === 0 ? "  " : "    "}${line}`)
    const children = spans
      .filter((child) => child.parentSpanContext?.spanId === span.spanContext().spanId)
      .sort((a, b) => a.startTime[0] - b.startTime[0] || a.startTime[1] - b.startTime[1])
    for (const child of children) visit(child, depth + 1)
  }
  const ids = new Set(spans.map((span) => span.spanContext().spanId))
  for (const root of spans.filter((span) => !ids.has(span.parentSpanContext?.spanId ?? ""))) visit(root, 0)
  return lines.join("\n")
}

const program = Effect.gen(function*() {
  yield* Console.log(`Backend: ${describeBackend()}`)
  const conversation = yield* Conversation.Conversation
  yield* Console.log("--- spans, as the console exporter prints them ---")
  yield* Effect.gen(function*() {
    yield* conversation.sendStream("Hi, I'm Sam.").pipe(Stream.runDrain)
    yield* conversation.send("What's the weather in Lisbon?", { toolkit: Toolkit.make(getWeather) })
  }).pipe(Effect.withSpan("session"))
  yield* Console.log(`--- the trace (conversation ${conversation.id}) ---\n${printTree(kept.getFinishedSpans())}`)
  yield* Console.log("--- metrics, as the console exporter prints them at shutdown ---")
})

const ConversationLive = Conversation.layer({ systemMessage: "You are a voice assistant. Be brief." }).pipe(
  Layer.provide(exampleLlm([
    {
      kind: "reply",
      text: "Hello Sam! How can I help?",
      chunkSize: 6,
      delayMs: 10,
      usage: { inputTokens: 24, outputTokens: 8 }
    },
    {
      kind: "reply",
      toolCalls: [{ id: "call_1", name: "get_weather", arguments: { city: "Lisbon" } }],
      usage: { inputTokens: 61, outputTokens: 15 }
    },
    { kind: "reply", text: "It's 12°C with light rain in Lisbon.", usage: { inputTokens: 98, outputTokens: 12 } }
  ]))
)

program.pipe(
  Effect.provide(ConversationLive),
  Effect.provide(Otel),
  Effect.runPromise
)
