/**
 * The benchmarked clients and scenarios, by name. The runner and the worker
 * both read this table; the worker imports only the one client module it
 * runs, so a process never holds another library's code.
 */
import { type Mode, objectChunks, type Protocol } from "./payloads.js"

/** One benchmarked client. */
export interface ClientSpec {
  readonly name: string
  /** The module under `bench/clients/` whose default export builds it. */
  readonly module:
    | "raw"
    | "rawStream"
    | "effectLlm"
    | "openai"
    | "anthropic"
    | "aiSdk"
    | "effectAi"
    | "effectHttp"
    | "effectLlmHttpClient"
    | "effectLlmOtel"
    | "effectLlmLayered"
  /** Passed to the module as `Target.variant`. */
  readonly variant?: string
  /**
   * What the column is: the raw baseline, effect-llm itself, a peer library,
   * a reference (a configuration or a plain client to compare with, not a
   * peer), the floor (raw behind the least Effect `Stream`), or a layer users
   * stack on effect-llm (run with `--layered`, on the CPU rows only, compared
   * with bare effect-llm as well as with raw; it checks its own output and
   * hands the worker the reply's text once, at the end, so it has no
   * first-token timing).
   */
  readonly kind: "raw" | "mine" | "peer" | "reference" | "floor" | "layered"
  /** Text deltas (or JSON deltas) per reply, when not `chunkCount`. */
  readonly chunks?: number
  readonly protocol: Protocol
  /** The column title in the tables. */
  readonly label: string
}

/** Every client, the raw baseline of each protocol first. */
export const clients: ReadonlyArray<ClientSpec> = [
  { name: "raw-chat", module: "raw", kind: "raw", protocol: "chat", label: "raw" },
  { name: "effect-llm-chat", module: "effectLlm", kind: "mine", protocol: "chat", label: "effect-llm (Local)" },
  { name: "openai", module: "openai", kind: "peer", protocol: "chat", label: "openai SDK" },
  { name: "ai-sdk-chat", module: "aiSdk", kind: "peer", protocol: "chat", label: "Vercel AI SDK" },
  {
    name: "effect-http-chat",
    module: "effectHttp",
    kind: "reference",
    protocol: "chat",
    label: "plain Effect HttpClient (reference)"
  },
  {
    name: "effect-llm-chat-httpclient",
    module: "effectLlmHttpClient",
    kind: "reference",
    protocol: "chat",
    label: "effect-llm (Local) on HttpClient (reference)"
  },
  {
    name: "effect-llm-chat-otel",
    module: "effectLlmOtel",
    kind: "reference",
    protocol: "chat",
    label: "effect-llm (Local), OpenTelemetry tracer on (reference)"
  },
  {
    name: "floor-chat",
    module: "rawStream",
    kind: "floor",
    protocol: "chat",
    label: "raw in an Effect Stream (floor)"
  },
  ...([
    ["fallback", "`Fallback` (two backends, the first healthy)"],
    ["conversation", "`Conversation.sendStream`"],
    ["conversation-reused", "`Conversation.sendStream`, one conversation reused"],
    ["toolkit", "`Toolkit.stream`, one tool step"],
    ["sentences", "`LlmStream.sentences`"],
    ["speak", "`Conversation.speak`, no-op sink"],
    ["speak-reused", "`Conversation.speak`, no-op sink, one conversation reused"],
    ["object", "`Llm.streamObject`"]
  ] as const).map(([variant, label]): ClientSpec => ({
    name: `layered-${variant}`,
    module: "effectLlmLayered",
    variant,
    kind: "layered",
    protocol: "chat",
    label,
    ...(variant === "object" ? { chunks: objectChunks.length } : {})
  })),
  { name: "raw-messages", module: "raw", kind: "raw", protocol: "messages", label: "raw" },
  {
    name: "effect-llm-messages",
    module: "effectLlm",
    kind: "mine",
    protocol: "messages",
    label: "effect-llm (Anthropic)"
  },
  { name: "anthropic", module: "anthropic", kind: "peer", protocol: "messages", label: "@anthropic-ai/sdk" },
  { name: "ai-sdk-messages", module: "aiSdk", kind: "peer", protocol: "messages", label: "Vercel AI SDK" },
  { name: "effect-ai-messages", module: "effectAi", kind: "peer", protocol: "messages", label: "@effect/ai-anthropic" },
  {
    name: "floor-messages",
    module: "rawStream",
    kind: "floor",
    protocol: "messages",
    label: "raw in an Effect Stream (floor)"
  },
  { name: "raw-responses", module: "raw", kind: "raw", protocol: "responses", label: "raw" },
  { name: "effect-ai-responses", module: "effectAi", kind: "peer", protocol: "responses", label: "@effect/ai-openai" }
]

/** The protocols, with their table titles. */
export const protocols: ReadonlyArray<{ readonly protocol: Protocol; readonly title: string }> = [
  { protocol: "chat", title: "OpenAI Chat Completions" },
  { protocol: "messages", title: "Anthropic Messages" },
  { protocol: "responses", title: "OpenAI Responses (only @effect/ai-openai speaks nothing else)" }
]

/** The scenarios a `layered` client runs (it has no first-token timing). */
export const layeredScenarios: ReadonlyArray<ScenarioName> = ["stream-seq", "stream-paced"]

/** The scenario names. */
export type ScenarioName =
  | "complete-seq"
  | "complete-64"
  | "stream-seq"
  | "stream-paced"
  | "stream-256"
  | "ttft"
  | "ttft-delayed"
  | "stream-1000-model"

/**
 * How many calls a scenario makes: a warm-up that is not measured (at least
 * `warmup` calls and at least `warmupMillis`, so the JIT has settled), then
 * `count` measured calls (streams, for the stream scenarios).
 */
export interface Size {
  readonly warmup: number
  readonly warmupMillis: number
  readonly count: number
  /** For `stream-1000-model`: how long the `count` concurrent conversations keep streaming. */
  readonly durationMillis?: number
}

/** One scenario: its delivery mode and its sizes in full and `--quick` runs. */
export interface ScenarioSpec {
  readonly name: ScenarioName
  readonly mode: Mode
  readonly full: Size
  readonly quick: Size
  /** Run only when named in `--scenarios` (it takes a while for every client). */
  readonly optIn?: boolean
}

/** Every scenario. */
export const scenarios: ReadonlyArray<ScenarioSpec> = [
  {
    name: "complete-seq",
    mode: "fast",
    full: { warmup: 300, warmupMillis: 1000, count: 2000 },
    quick: { warmup: 100, warmupMillis: 250, count: 300 }
  },
  {
    name: "complete-64",
    mode: "fast",
    full: { warmup: 512, warmupMillis: 1000, count: 4096 },
    quick: { warmup: 128, warmupMillis: 250, count: 768 }
  },
  {
    name: "stream-seq",
    mode: "fast",
    full: { warmup: 10, warmupMillis: 1000, count: 50 },
    quick: { warmup: 3, warmupMillis: 150, count: 6 }
  },
  {
    name: "stream-paced",
    mode: "paced",
    full: { warmup: 10, warmupMillis: 0, count: 12 },
    quick: { warmup: 1, warmupMillis: 0, count: 1 }
  },
  {
    name: "stream-256",
    mode: "fast",
    full: { warmup: 16, warmupMillis: 0, count: 256 },
    quick: { warmup: 4, warmupMillis: 0, count: 32 }
  },
  {
    name: "ttft",
    mode: "ttft",
    full: { warmup: 30, warmupMillis: 500, count: 300 },
    quick: { warmup: 5, warmupMillis: 100, count: 25 }
  },
  {
    // `count` conversations at once, each streaming reply after reply at 50 events/s for `durationMillis`
    name: "stream-1000-model",
    mode: "model",
    full: { warmup: 50, warmupMillis: 0, count: 1000, durationMillis: 10_000 },
    quick: { warmup: 10, warmupMillis: 0, count: 100, durationMillis: 3_000 },
    optIn: true
  },
  {
    name: "ttft-delayed",
    mode: "delayed",
    full: { warmup: 30, warmupMillis: 500, count: 300 },
    quick: { warmup: 5, warmupMillis: 100, count: 25 }
  }
]
