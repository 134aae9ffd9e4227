/**
 * What the library reports and how to control it. Every call is traced with
 * Effect's tracer under the OpenTelemetry GenAI semantic conventions (a
 * `chat {model}` client span per call, `execute_tool {name}` spans for tools,
 * span events for retries, fallback steps and breaker changes) and measured
 * with Effect `Metric`s (the conventions' client histograms and effect-llm's
 * counters). Install an OpenTelemetry SDK with `@effect/opentelemetry` to
 * export both; without a tracer no span is made.
 *
 * No message content, tool arguments or results are recorded unless
 * `captureContent` is on; no key ever is.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as Layer from "effect/Layer"
import * as Metrics from "./internal/metrics.js"
import * as Semconv from "./internal/semconv.js"

/**
 * The conventions the span, attribute and metric names follow.
 *
 * @since 0.1.0
 */
export const conventions: string = Semconv.conventions

/**
 * Whether spans record content: the messages sent and received
 * (`gen_ai.input.messages`, `gen_ai.output.messages`, as JSON strings in the
 * conventions' format) and tool arguments and results
 * (`gen_ai.tool.call.arguments`, `gen_ai.tool.call.result`). Off by default:
 * content is user data.
 *
 * @since 0.1.0
 */
export const captureContent: FiberRef.FiberRef<boolean> = FiberRef.unsafeMake(false)

/**
 * Runs `effect` with content capture on (see `captureContent`).
 *
 * @since 0.1.0
 */
export const withContentCapture = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.locally(effect, captureContent, true)

/**
 * A layer that turns content capture on for the program it is provided to
 * (see `captureContent`).
 *
 * @since 0.1.0
 */
export const layerContentCapture: Layer.Layer<never> = Layer.scopedDiscard(
  Effect.locallyScoped(captureContent, true)
)

/**
 * The conversation the calls belong to, recorded as `gen_ai.conversation.id`
 * on their spans. A `Conversation` sets it for its turns; set it yourself
 * around calls that keep their own history.
 *
 * @since 0.1.0
 */
export const conversationId: FiberRef.FiberRef<string | undefined> = FiberRef.unsafeMake<string | undefined>(
  undefined
)

/**
 * Runs `effect` with its calls recorded as belonging to the conversation `id`.
 *
 * @since 0.1.0
 */
export const withConversationId = (id: string) => <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.locally(effect, conversationId, id)

/**
 * `gen_ai.client.operation.duration` (seconds), per call, with the
 * conventions' bucket boundaries and attributes (`gen_ai.operation.name`,
 * `gen_ai.provider.name`, `gen_ai.request.model`, `gen_ai.response.model`,
 * `server.address`, `server.port`, `error.type`).
 *
 * @since 0.1.0
 */
export const operationDuration = Metrics.operationDuration

/**
 * `gen_ai.client.token.usage` (tokens), per call, by `gen_ai.token.type`
 * (`input`, `output`), when the backend reported usage.
 *
 * @since 0.1.0
 */
export const tokenUsage = Metrics.tokenUsage

/**
 * `gen_ai.client.operation.time_to_first_chunk` (seconds), per stream that
 * delivered content.
 *
 * @since 0.1.0
 */
export const timeToFirstChunk = Metrics.timeToFirstChunk

/**
 * `effect_llm.client.calls`: calls by `gen_ai.provider.name` and
 * `effect_llm.outcome` (`success`, `error` with its `error.type`, `interrupted`).
 *
 * @since 0.1.0
 */
export const calls = Metrics.calls

/**
 * `effect_llm.client.retries`: retried attempts by `gen_ai.provider.name` and `error.type`.
 *
 * @since 0.1.0
 */
export const retries = Metrics.retries

/**
 * `effect_llm.fallback.steps`: fallback steps by `effect_llm.fallback.from`,
 * `effect_llm.fallback.to` and `effect_llm.fallback.reason`.
 *
 * @since 0.1.0
 */
export const fallbacks = Metrics.fallbacks

/**
 * `effect_llm.breaker.state`: each fallback backend's breaker, by
 * `effect_llm.backend` and `effect_llm.backend.index`: 0 closed, 1 half-open, 2 open.
 *
 * @since 0.1.0
 */
export const breakerState = Metrics.breakerState
