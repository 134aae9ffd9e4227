/**
 * What one model call reports, for every HTTP backend alike: its `chat {model}`
 * client span (made only when the application installed a tracer) with the
 * GenAI conventions' attributes, a span event per retry, and its metrics
 * (duration, tokens, time to first chunk, the call's outcome, retries). What
 * does not depend on the call (the backend, the model, the server, the metric
 * labels) is built once per endpoint.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import type * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import type * as Tracer from "effect/Tracer"
import type { LlmError } from "../errors.js"
import type { CompletionOptions } from "../Llm.js"
import type { Message } from "../Message.js"
import { type CompletionResult, type FinishReason, Usage } from "../Reply.js"
import { captureContent, conversationId } from "../Telemetry.js"
import { inputMessages, outputMessages } from "./genAiMessages.js"
import * as Metrics from "./metrics.js"
import type { RetryNotice } from "./retry.js"
import { attr, event, operation } from "./semconv.js"
import { annotate, nativeTracer, setStrings } from "./tracing.js"

/** The metric labels of one response model: duration, input and output tokens, time to first chunk. */
interface ResponseLabels {
  readonly duration: ReadonlyArray<MetricLabel.MetricLabel>
  readonly input: ReadonlyArray<MetricLabel.MetricLabel>
  readonly output: ReadonlyArray<MetricLabel.MetricLabel>
}

/** What the calls of one backend and model share, built once. */
export interface Instrument {
  readonly provider: string
  readonly model: string
  readonly spanName: string
  /** The attributes every call's span starts with. */
  readonly attributes: Readonly<Record<string, unknown>>
  /** The metric labels every call's metrics start with. */
  readonly labels: Readonly<Record<string, string | number | undefined>>
  readonly byResponse: Map<string, ResponseLabels>
  readonly byError: Map<string, ReadonlyArray<MetricLabel.MetricLabel>>
  readonly calls: Map<string, ReadonlyArray<MetricLabel.MetricLabel>>
  readonly retries: Map<string, ReadonlyArray<MetricLabel.MetricLabel>>
  readonly firstChunk: ReadonlyArray<MetricLabel.MetricLabel>
}

/** Label arrays are kept per response model and error type, up to this many of each. */
const maxCached = 32

const cached = <A>(map: Map<string, A>, key: string, make: () => A): A => {
  const found = map.get(key)
  if (found !== undefined) return found
  const made = make()
  if (map.size < maxCached) map.set(key, made)
  return made
}

/** The server a base URL names: host and port (the scheme's default when none is given). */
const serverOf = (baseUrl: string): { readonly address?: string; readonly port?: number } => {
  try {
    const url = new URL(baseUrl)
    const port = url.port === ""
      ? (url.protocol === "https:" ? 443 : url.protocol === "http:" ? 80 : undefined)
      : Number(url.port)
    return { address: url.hostname.replace(/^\[|\]$/g, ""), ...(port === undefined ? {} : { port }) }
  } catch {
    return {}
  }
}

/**
 * The instrument of a backend's calls to `model`. `provider` is the backend's
 * name, which is also its `gen_ai.provider.name`: the conventions' value for
 * `openai` and `anthropic`, a name of our own for `openrouter` and `local`
 * (the conventions have none), the declared name for a custom provider.
 */
export const make = (provider: string, model: string, baseUrl: string): Instrument => {
  const server = serverOf(baseUrl)
  const labels = {
    [attr.operationName]: operation.chat,
    [attr.providerName]: provider,
    [attr.requestModel]: model,
    [attr.serverAddress]: server.address,
    [attr.serverPort]: server.port
  }
  return {
    provider,
    model,
    spanName: `${operation.chat} ${model}`,
    attributes: Object.fromEntries(Object.entries(labels).filter(([, value]) => value !== undefined)),
    labels,
    byResponse: new Map(),
    byError: new Map(),
    calls: new Map(),
    retries: new Map(),
    firstChunk: Metrics.labels(labels)
  }
}

/** What a call asks for, as its span records it. */
export interface CallInfo {
  readonly messages: ReadonlyArray<Message>
  readonly options: CompletionOptions
  readonly stream: boolean
  /** A prompt-cache warm-up (`Llm.Service.warm`). */
  readonly warm?: boolean | undefined
}

/** The span's attributes at its start: the instrument's, the request's, the conversation, and the input when captured. */
export const startAttributes = (
  instrument: Instrument,
  call: CallInfo,
  fiber: Fiber.RuntimeFiber<unknown, unknown>
): Record<string, unknown> => {
  const out: Record<string, unknown> = { ...instrument.attributes }
  const { options } = call
  if (options.maxTokens !== undefined) out[attr.requestMaxTokens] = options.maxTokens
  if (options.temperature !== undefined) out[attr.requestTemperature] = options.temperature
  if (options.topP !== undefined) out[attr.requestTopP] = options.topP
  if (options.stop !== undefined && options.stop.length > 0) out[attr.requestStopSequences] = [...options.stop]
  if (call.stream) out[attr.requestStream] = true
  if (call.warm === true) out[attr.warm] = true
  const conversation = fiber.getFiberRef(conversationId)
  if (conversation !== undefined) out[attr.conversationId] = conversation
  if (fiber.getFiberRef(captureContent)) out[attr.inputMessages] = inputMessages(call.messages)
  return out
}

/** What a reply tells its span and metrics. */
export interface ReplyInfo {
  readonly model: string
  readonly responseId?: string | undefined
  readonly finishReason: FinishReason
  readonly usage: Usage
}

/** Whether the backend reported usage (`Usage.empty` is what one that reports nothing gets). */
const reportsUsage = (usage: Usage) => usage !== Usage.empty

/** The reply's attributes on its span: the response model and id, the finish reason, the usage. */
export const annotateReply = (span: Tracer.Span, reply: ReplyInfo): void => {
  if (reply.model !== "") span.attribute(attr.responseModel, reply.model)
  if (reply.responseId !== undefined) span.attribute(attr.responseId, reply.responseId)
  setStrings(span, attr.responseFinishReasons, [reply.finishReason])
  const { usage } = reply
  if (!reportsUsage(usage)) return
  span.attribute(attr.usageInputTokens, usage.inputTokens)
  span.attribute(attr.usageOutputTokens, usage.outputTokens)
  if (usage.cachedInputTokens !== undefined) span.attribute(attr.usageCacheReadInputTokens, usage.cachedInputTokens)
  if (usage.cacheWriteInputTokens !== undefined) {
    span.attribute(attr.usageCacheWriteInputTokens, usage.cacheWriteInputTokens)
  }
  if (usage.reasoningTokens !== undefined) span.attribute(attr.usageReasoningOutputTokens, usage.reasoningTokens)
}

/** The `error.type` of a call that failed with `cause`: its `LlmError`'s tag, or `_OTHER` for a defect. */
export const errorTypeOf = (cause: Cause.Cause<LlmError>): string => {
  const failure = Cause.failureOption(cause)
  return Option.isSome(failure) ? failure.value._tag : "_OTHER"
}

const responseLabels = (instrument: Instrument, model: string): ResponseLabels =>
  cached(instrument.byResponse, model, () => {
    const base = { ...instrument.labels, [attr.responseModel]: model === "" ? undefined : model }
    return {
      duration: Metrics.labels(base),
      input: Metrics.labels({ ...base, [attr.tokenType]: "input" }),
      output: Metrics.labels({ ...base, [attr.tokenType]: "output" })
    }
  })

const callLabels = (instrument: Instrument, outcome: string, errorType?: string) =>
  cached(instrument.calls, errorType ?? outcome, () =>
    Metrics.labels({
      [attr.operationName]: operation.chat,
      [attr.providerName]: instrument.provider,
      [attr.requestModel]: instrument.model,
      [attr.outcome]: outcome,
      [attr.errorType]: errorType
    }))

/** `tags` with the fiber's own metric tags (`Effect.tagMetrics`) added, if it has any. */
const withFiberTags = (
  tags: ReadonlyArray<MetricLabel.MetricLabel>,
  extra: ReadonlyArray<MetricLabel.MetricLabel>
): ReadonlyArray<MetricLabel.MetricLabel> => extra.length === 0 ? tags : [...tags, ...extra]

/** How a call ended, as its metrics record it. */
export type Ending =
  | { readonly _tag: "Answered"; readonly reply: ReplyInfo }
  | { readonly _tag: "Failed"; readonly errorType: string }
  | { readonly _tag: "Interrupted" }

/**
 * Records a call's metrics: its outcome; its duration unless interrupted;
 * its tokens when answered with usage; a stream's time to first chunk when
 * content arrived. Times are in milliseconds, recorded in seconds.
 */
export const record = (
  instrument: Instrument,
  ending: Ending,
  millis: number,
  firstChunkMillis: number | undefined,
  extra: ReadonlyArray<MetricLabel.MetricLabel>
): void => {
  switch (ending._tag) {
    case "Answered": {
      const { reply } = ending
      const labels = responseLabels(instrument, reply.model)
      Metrics.operationDuration.unsafeUpdate(millis / 1000, withFiberTags(labels.duration, extra))
      if (reportsUsage(reply.usage)) {
        Metrics.tokenUsage.unsafeUpdate(reply.usage.inputTokens, withFiberTags(labels.input, extra))
        Metrics.tokenUsage.unsafeUpdate(reply.usage.outputTokens, withFiberTags(labels.output, extra))
      }
      if (firstChunkMillis !== undefined) {
        Metrics.timeToFirstChunk.unsafeUpdate(firstChunkMillis / 1000, withFiberTags(labels.duration, extra))
      }
      Metrics.increment(Metrics.calls, withFiberTags(callLabels(instrument, "success"), extra))
      return
    }
    case "Failed": {
      const labels = cached(
        instrument.byError,
        ending.errorType,
        () => Metrics.labels({ ...instrument.labels, [attr.errorType]: ending.errorType })
      )
      Metrics.operationDuration.unsafeUpdate(millis / 1000, withFiberTags(labels, extra))
      if (firstChunkMillis !== undefined) {
        Metrics.timeToFirstChunk.unsafeUpdate(firstChunkMillis / 1000, withFiberTags(instrument.firstChunk, extra))
      }
      Metrics.increment(Metrics.calls, withFiberTags(callLabels(instrument, "error", ending.errorType), extra))
      return
    }
    case "Interrupted": {
      if (firstChunkMillis !== undefined) {
        Metrics.timeToFirstChunk.unsafeUpdate(firstChunkMillis / 1000, withFiberTags(instrument.firstChunk, extra))
      }
      Metrics.increment(Metrics.calls, withFiberTags(callLabels(instrument, "interrupted"), extra))
    }
  }
}

/** Millis to the nanoseconds of a span event's time. */
export const nanosOf = (millis: number): bigint => BigInt(Math.round(millis)) * 1_000_000n

/**
 * What a retry reports: an `effect_llm.retry` event on the call's span (the
 * attempt that failed, its `error.type` and message, the delay in seconds)
 * and one more `effect_llm.client.retries`.
 */
export const retried = (instrument: Instrument, span: Tracer.Span | undefined) => (notice: RetryNotice<LlmError>) => {
  const errorType = notice.error._tag
  span?.event(event.retry, nanosOf(notice.atMillis), {
    [attr.retryAttempt]: notice.attempt,
    [attr.errorType]: errorType,
    [attr.errorMessage]: notice.error.message,
    [attr.retryDelay]: notice.delayMillis / 1000
  })
  Metrics.increment(
    Metrics.retries,
    cached(instrument.retries, errorType, () =>
      Metrics.labels({
        [attr.providerName]: instrument.provider,
        [attr.requestModel]: instrument.model,
        [attr.errorType]: errorType
      }))
  )
}

/** How a whole call (`complete`) ended. */
const endingOf = (exit: Exit.Exit<CompletionResult, LlmError>): Ending =>
  Exit.isSuccess(exit)
    ? { _tag: "Answered", reply: replyOf(exit.value) }
    : Cause.isInterruptedOnly(exit.cause)
    ? { _tag: "Interrupted" }
    : { _tag: "Failed", errorType: errorTypeOf(exit.cause) }

const replyOf = (result: CompletionResult): ReplyInfo => ({
  model: result.model,
  responseId: result.metadata.responseId,
  finishReason: result.finishReason,
  usage: result.usage
})

/**
 * `Effect.onExit` for a plain callback: `onExit` runs with the exit (on
 * failure, interruption included) in the continuation that sees it, not in
 * an effect of its own (two fiber steps fewer a call).
 */
const onExitNow = <A, E, R>(self: Effect.Effect<A, E, R>, onExit: (exit: Exit.Exit<A, E>) => void) =>
  Effect.uninterruptibleMask((restore) =>
    Effect.matchCauseEffect(restore(self), {
      onFailure: (cause) => {
        const exit = Exit.failCause(cause)
        onExit(exit)
        return exit
      },
      onSuccess: (value) => {
        const exit = Exit.succeed(value)
        onExit(exit)
        return exit
      }
    })
  )

/**
 * A whole call: `run` (given the call's span, or undefined, and the fiber's clock) inside its
 * `chat {model}` span when the application installed a tracer, else as it
 * is (under Effect's built-in tracer nothing below makes a span, the
 * transports included); its reply or failure annotates the span, and its
 * metrics are recorded.
 */
export const completion = <R>(
  instrument: Instrument,
  call: CallInfo,
  run: (span: Tracer.Span | undefined, clock: Clock.Clock) => Effect.Effect<CompletionResult, LlmError, R>
): Effect.Effect<CompletionResult, LlmError, R> =>
  Effect.withFiberRuntime((fiber) => {
    const clock = Context.get(fiber.currentDefaultServices, Clock.Clock)
    const started = clock.unsafeCurrentTimeMillis()
    const extra = fiber.getFiberRef(FiberRef.currentMetricLabels)
    const finish = (exit: Exit.Exit<CompletionResult, LlmError>, span: Tracer.Span | undefined): void => {
      const ending = endingOf(exit)
      if (span !== undefined) {
        if (ending._tag === "Answered") {
          annotateReply(span, ending.reply)
          if (fiber.getFiberRef(captureContent) && Exit.isSuccess(exit)) {
            span.attribute(attr.outputMessages, outputMessages(exit.value))
          }
        } else if (ending._tag === "Failed") span.attribute(attr.errorType, ending.errorType)
      }
      record(instrument, ending, clock.unsafeCurrentTimeMillis() - started, undefined, extra)
    }
    if (fiber.currentTracer === nativeTracer) return onExitNow(run(undefined, clock), (exit) => finish(exit, undefined))
    return Effect.useSpan(instrument.spanName, { kind: "client", captureStackTrace: false }, (span) => {
      annotate(span, startAttributes(instrument, call, fiber))
      return Effect.withParentSpan(onExitNow(run(span, clock), (exit) => finish(exit, span)), span)
    })
  })
