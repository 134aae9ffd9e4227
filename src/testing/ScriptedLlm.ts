/**
 * A scripted `Llm` for testing applications built on effect-llm: each call is
 * answered by the next step of a script (or by a function of the request),
 * with replies, streamed deltas at the pace you give, tool calls and faults,
 * and every request is recorded. It runs on Effect's clock, so `TestClock`
 * drives its delays, and interrupting a stream's consumer stops it as it
 * would stop a real backend.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import type { LlmError } from "../errors.js"
import { withPartialText } from "../internal/errorFactory.js"
import { type CompletionOptions, Llm } from "../Llm.js"
import { type Message, ToolCall } from "../Message.js"
import { type FinishReason, ResponseMetadata, StreamEvent, Usage } from "../Reply.js"
import { collect } from "../Stream.js"

/**
 * A scripted reply: text (streamed as `deltas`, or split at word boundaries),
 * optional reasoning and tool calls, at the pace `firstTokenDelay` and `delay`
 * set.
 *
 * @since 0.1.0
 */
export interface ReplyStep {
  readonly _tag: "Reply"
  readonly text: string
  /** How a stream delivers `text`; joined they must equal it (default: one delta per word). */
  readonly deltas?: ReadonlyArray<string> | undefined
  readonly reasoning?: string | undefined
  readonly toolCalls?: ReadonlyArray<ScriptedToolCall> | undefined
  /** Default: `tool_calls` when there are tool calls, else `stop`. */
  readonly finishReason?: FinishReason | undefined
  readonly usage?: Usage | undefined
  /** Wait before the first event (or before `complete` answers). */
  readonly firstTokenDelay?: Duration.DurationInput | undefined
  /** Wait between two events of a stream. */
  readonly delay?: Duration.DurationInput | undefined
}

/**
 * A scripted failure: the call fails with `error`; a stream first delivers
 * `afterText` (if given), then fails with the error carrying it as
 * `partialText`, as a backend that broke mid-reply does.
 *
 * @since 0.1.0
 */
export interface FailStep {
  readonly _tag: "Fail"
  readonly error: LlmError
  readonly afterText?: string | undefined
  /** Wait before failing (or before the first delta of `afterText`). */
  readonly delay?: Duration.DurationInput | undefined
}

/**
 * A call that never answers: for testing the caller's own timeouts and
 * interruption.
 *
 * @since 0.1.0
 */
export interface HangStep {
  readonly _tag: "Hang"
}

/**
 * One scripted call: a reply, a failure, or a hang.
 *
 * @since 0.1.0
 */
export type Step = ReplyStep | FailStep | HangStep

/**
 * A tool call in a scripted reply (`id` defaults to `call_<n>`).
 *
 * @since 0.1.0
 */
export interface ScriptedToolCall {
  readonly id?: string | undefined
  readonly name: string
  readonly arguments: Readonly<Record<string, unknown>>
}

/**
 * A reply with `text`.
 *
 * @since 0.1.0
 */
export const reply = (text: string, options: Omit<ReplyStep, "_tag" | "text"> = {}): ReplyStep => ({
  _tag: "Reply",
  text,
  ...options
})

/**
 * A reply that asks for tools (with optional text before the calls).
 *
 * @since 0.1.0
 */
export const toolCalls = (
  calls: ReadonlyArray<ScriptedToolCall>,
  options: Omit<ReplyStep, "_tag" | "toolCalls"> = { text: "" }
): ReplyStep => ({ _tag: "Reply", ...options, toolCalls: calls })

/**
 * A call that fails with `error` (a stream after delivering `afterText`).
 *
 * @since 0.1.0
 */
export const fail = (error: LlmError, options: Omit<FailStep, "_tag" | "error"> = {}): FailStep => ({
  _tag: "Fail",
  error,
  ...options
})

/**
 * A call that never answers.
 *
 * @since 0.1.0
 */
export const hang: HangStep = { _tag: "Hang" }

/**
 * One call the scripted `Llm` received, and how it ended.
 *
 * @since 0.1.0
 */
export interface RecordedCall {
  /** `complete` or `stream`. */
  readonly kind: "complete" | "stream"
  readonly messages: ReadonlyArray<Message>
  readonly options: CompletionOptions | undefined
  /**
   * `open` while it runs; then `completed`, `failed`, or `interrupted` (the
   * caller stopped it: an interrupted fiber or a consumer that stopped early).
   */
  readonly outcome: "open" | "completed" | "failed" | "interrupted"
}

/**
 * How calls are answered: steps in order (a call past the last step is a
 * defect naming the call), or a function of the call and its position.
 *
 * @since 0.1.0
 */
export type Script = ReadonlyArray<Step> | ((call: RecordedCall, index: number) => Step)

/**
 * What a test reads back of the scripted `Llm`.
 *
 * @since 0.1.0
 */
export class ScriptedLlm extends Context.Tag("effect-llm/testing/ScriptedLlm")<ScriptedLlm, {
  /** Every call received so far, in order. */
  readonly calls: Effect.Effect<ReadonlyArray<RecordedCall>>
}>() {}

/**
 * Options of the scripted `Llm`.
 *
 * @since 0.1.0
 */
export interface ScriptedLlmOptions {
  /** The backend name in results (default `scripted`). */
  readonly provider?: string | undefined
  /** The model name in results (default `scripted-model`). */
  readonly model?: string | undefined
}

/** The words of `text`, each with the whitespace after it. */
const words = (text: string): Array<string> => text.match(/\S+\s*|\s+/g) ?? []

const sleep = (delay: Duration.DurationInput | undefined) =>
  delay === undefined || Duration.toMillis(Duration.decode(delay)) === 0 ? Effect.void : Effect.sleep(delay)

/**
 * Builds the scripted `Llm` service and the record of its calls.
 *
 * @since 0.1.0
 */
export const make = (
  script: Script,
  options: ScriptedLlmOptions = {}
): Effect.Effect<{ readonly llm: Llm.Service; readonly calls: Effect.Effect<ReadonlyArray<RecordedCall>> }> =>
  Effect.sync(() => {
    const provider = options.provider ?? "scripted"
    const model = options.model ?? "scripted-model"
    const calls: Array<RecordedCall> = []

    /** Records a call and finds its step. */
    const begin = (kind: RecordedCall["kind"], messages: ReadonlyArray<Message>, callOptions?: CompletionOptions) => {
      const index = calls.length
      const call: RecordedCall = { kind, messages, options: callOptions, outcome: "open" }
      calls.push(call)
      const step = typeof script === "function"
        ? script(call, index)
        : script[index]
      if (step === undefined) {
        return Effect.dieMessage(`ScriptedLlm: call ${index + 1} has no step (the script has ${script.length})`)
      }
      const settle = (outcome: RecordedCall["outcome"]) => Effect.sync(() => (calls[index] = { ...call, outcome }))
      return Effect.succeed({ step, settle })
    }

    const settled = <A, E, R>(
      settle: (outcome: RecordedCall["outcome"]) => Effect.Effect<unknown>,
      effect: Effect.Effect<A, E, R>
    ) =>
      Effect.onExit(
        effect,
        (exit) =>
          settle(exit._tag === "Success" ? "completed" : Cause.isInterruptedOnly(exit.cause) ? "interrupted" : "failed")
      )

    /** The content events of a reply step, in order. */
    const contentOf = (step: ReplyStep): Array<StreamEvent> => {
      const events: Array<StreamEvent> = []
      if (step.reasoning !== undefined && step.reasoning !== "") {
        events.push(StreamEvent.ReasoningDelta({ text: step.reasoning }))
      }
      for (const text of step.deltas ?? words(step.text)) events.push(StreamEvent.TextDelta({ text }))
      ;(step.toolCalls ?? []).forEach((call, index) => {
        const toolCall = new ToolCall({ id: call.id ?? `call_${index}`, name: call.name, arguments: call.arguments })
        events.push(StreamEvent.ToolCallStart({ index, id: toolCall.id, name: toolCall.name }))
        events.push(StreamEvent.ToolCallDelta({ index, argumentsDelta: JSON.stringify(call.arguments) }))
        events.push(StreamEvent.ToolCall({ index, toolCall }))
      })
      return events
    }

    const now = Effect.clockWith((clock) => clock.currentTimeMillis)

    /** A reply step as a stream of events, paced by Effect's clock. */
    const replyStream = (step: ReplyStep): Stream.Stream<StreamEvent> =>
      Stream.unwrap(Effect.gen(function*() {
        const startedAt = yield* now
        yield* sleep(step.firstTokenDelay)
        const firstAt = yield* now
        const content = contentOf(step)
        const finish = Effect.map(now, (at) =>
          StreamEvent.Finish({
            finishReason: step.finishReason ?? ((step.toolCalls ?? []).length > 0 ? "tool_calls" : "stop"),
            usage: step.usage ??
              new Usage({ inputTokens: 0, outputTokens: content.length, totalTokens: content.length }),
            model,
            metadata: new ResponseMetadata({
              provider,
              attempts: 1,
              latencyMillis: at - startedAt,
              firstTokenMillis: firstAt - startedAt
            })
          }))
        return Stream.concat(
          Stream.fromIterable(content).pipe(
            Stream.zipWithIndex,
            Stream.mapEffect(([event, i]) => Effect.as(i === 0 ? Effect.void : sleep(step.delay), event))
          ),
          Stream.fromEffect(finish)
        )
      }))

    /** A step as a stream of events. */
    const streamOf = (step: Step): Stream.Stream<StreamEvent, LlmError> => {
      switch (step._tag) {
        case "Hang":
          return Stream.never
        case "Reply":
          return replyStream(step)
        case "Fail": {
          const partial = step.afterText === undefined ? [] : words(step.afterText)
          return Stream.fromEffect(sleep(step.delay)).pipe(
            Stream.drain,
            Stream.concat(Stream.fromIterable(partial.map((text) => StreamEvent.TextDelta({ text })))),
            Stream.concat(
              Stream.fail(step.afterText === undefined ? step.error : withPartialText(step.error, step.afterText))
            )
          )
        }
      }
    }

    const llm: Llm.Service = {
      provider,
      model,
      complete: (messages, callOptions) =>
        Effect.flatMap(begin("complete", messages, callOptions), ({ settle, step }) =>
          settled(
            settle,
            step._tag === "Fail"
              ? Effect.zipRight(sleep(step.delay), Effect.fail(step.error))
              : step._tag === "Hang"
              ? Effect.never
              : Effect.orDie(collect(replyStream(step)))
          )),
      stream: (messages, callOptions) =>
        Stream.unwrap(Effect.map(begin("stream", messages, callOptions), ({ settle, step }) => {
          let outcome: RecordedCall["outcome"] = "interrupted"
          return streamOf(step).pipe(
            Stream.onEnd(Effect.sync(() => (outcome = "completed"))),
            Stream.tapError(() => Effect.sync(() => (outcome = "failed"))),
            Stream.ensuring(Effect.suspend(() => settle(outcome)))
          )
        }))
    }
    return { llm, calls: Effect.sync(() => calls.slice()) }
  })

/**
 * The scripted `Llm` as a layer, with `ScriptedLlm` to read its calls back.
 *
 * @example
 * import { Effect } from "effect"
 * import { Llm, Message } from "effect-llm"
 * import { ScriptedLlm } from "effect-llm/testing"
 *
 * const test = Effect.gen(function*() {
 *   const result = yield* Llm.complete([Message.user("Hi")])
 *   const calls = yield* ScriptedLlm.calls
 *   // result.content === "Hello!", calls.length === 1
 * }).pipe(Effect.provide(ScriptedLlm.layer([ScriptedLlm.reply("Hello!")])))
 *
 * @since 0.1.0
 */
export const layer = (script: Script, options?: ScriptedLlmOptions): Layer.Layer<Llm | ScriptedLlm> =>
  Layer.effectContext(
    Effect.map(
      make(script, options),
      ({ calls, llm }) => Context.make(Llm, llm).pipe(Context.add(ScriptedLlm, { calls }))
    )
  )

/**
 * Every call the scripted `Llm` in context received so far.
 *
 * @since 0.1.0
 */
export const calls: Effect.Effect<ReadonlyArray<RecordedCall>, never, ScriptedLlm> = Effect.flatMap(
  ScriptedLlm,
  (scripted) => scripted.calls
)
