/**
 * The one place that names what the library reports: the OpenTelemetry GenAI
 * semantic conventions' span, attribute, metric and value names, and effect-llm's own
 * (`effect_llm.*`) for what the conventions do not cover.
 *
 * The conventions are "Development" (unstable) and their package says not to
 * import its incubating entry at runtime, so the names are copied here. They are
 * those of `@opentelemetry/semantic-conventions` 1.45.0 (incubating entry), the
 * GenAI conventions as they moved to the `semantic-conventions-genai`
 * repository, with one later rename from that repository:
 * `gen_ai.usage.cache_write.input_tokens` (formerly `cache_creation`).
 *
 * @internal
 */

/** The conventions these names follow, as the docs state it. */
export const conventions =
  "OpenTelemetry GenAI semantic conventions (Development): semconv 1.45.0, with semantic-conventions-genai's gen_ai.usage.cache_write.input_tokens"

/** Attribute names. */
export const attr = {
  operationName: "gen_ai.operation.name",
  providerName: "gen_ai.provider.name",
  conversationId: "gen_ai.conversation.id",
  requestModel: "gen_ai.request.model",
  requestMaxTokens: "gen_ai.request.max_tokens",
  requestTemperature: "gen_ai.request.temperature",
  requestTopP: "gen_ai.request.top_p",
  requestStopSequences: "gen_ai.request.stop_sequences",
  requestStream: "gen_ai.request.stream",
  responseModel: "gen_ai.response.model",
  responseId: "gen_ai.response.id",
  responseFinishReasons: "gen_ai.response.finish_reasons",
  responseTimeToFirstChunk: "gen_ai.response.time_to_first_chunk",
  usageInputTokens: "gen_ai.usage.input_tokens",
  usageOutputTokens: "gen_ai.usage.output_tokens",
  usageCacheReadInputTokens: "gen_ai.usage.cache_read.input_tokens",
  usageCacheWriteInputTokens: "gen_ai.usage.cache_write.input_tokens",
  usageReasoningOutputTokens: "gen_ai.usage.reasoning.output_tokens",
  tokenType: "gen_ai.token.type",
  inputMessages: "gen_ai.input.messages",
  outputMessages: "gen_ai.output.messages",
  toolName: "gen_ai.tool.name",
  toolCallId: "gen_ai.tool.call.id",
  toolType: "gen_ai.tool.type",
  toolDescription: "gen_ai.tool.description",
  toolCallArguments: "gen_ai.tool.call.arguments",
  toolCallResult: "gen_ai.tool.call.result",
  serverAddress: "server.address",
  serverPort: "server.port",
  errorType: "error.type",
  errorMessage: "error.message",
  // effect-llm's own
  outcome: "effect_llm.outcome",
  warm: "effect_llm.warm",
  retryAttempt: "effect_llm.retry.attempt",
  retryDelay: "effect_llm.retry.delay",
  fallbackBackends: "effect_llm.fallback.backends",
  fallbackFrom: "effect_llm.fallback.from",
  fallbackTo: "effect_llm.fallback.to",
  fallbackReason: "effect_llm.fallback.reason",
  backend: "effect_llm.backend",
  backendIndex: "effect_llm.backend.index",
  breakerFrom: "effect_llm.breaker.from",
  breakerTo: "effect_llm.breaker.to"
} as const

/** Operation names (`gen_ai.operation.name`). */
export const operation = { chat: "chat", executeTool: "execute_tool" } as const

/** Span event names (effect-llm's own). */
export const event = {
  retry: "effect_llm.retry",
  fallback: "effect_llm.fallback",
  breaker: "effect_llm.breaker"
} as const

/** The fallback chain's span. */
export const fallbackSpan = "effect_llm.fallback"

/** Metric names. */
export const metric = {
  operationDuration: "gen_ai.client.operation.duration",
  tokenUsage: "gen_ai.client.token.usage",
  timeToFirstChunk: "gen_ai.client.operation.time_to_first_chunk",
  calls: "effect_llm.client.calls",
  retries: "effect_llm.client.retries",
  fallbacks: "effect_llm.fallback.steps",
  breakerState: "effect_llm.breaker.state"
} as const

/** `gen_ai.client.operation.duration` and `time_to_first_chunk` boundaries, in seconds, as the conventions give them. */
export const durationBoundaries: ReadonlyArray<number> = [
  0.01,
  0.02,
  0.04,
  0.08,
  0.16,
  0.32,
  0.64,
  1.28,
  2.56,
  5.12,
  10.24,
  20.48,
  40.96,
  81.92
]

/** `gen_ai.client.token.usage` boundaries, in tokens, as the conventions give them. */
export const tokenBoundaries: ReadonlyArray<number> = [
  1,
  4,
  16,
  64,
  256,
  1024,
  4096,
  16384,
  65536,
  262144,
  1048576,
  4194304,
  16777216,
  67108864
]
