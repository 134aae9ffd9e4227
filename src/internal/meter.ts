/**
 * An `Llm` that reports what each of its calls was billed for: a reply's
 * `Usage.billed` (its own usage and that of the attempts that failed before
 * it), a failed call's `error.usage`. A call that reported nothing (a stream
 * interrupted before its end) reports nothing.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import type { LlmError } from "../errors.js"
import type { CompletionOptions, Llm } from "../Llm.js"
import type { Message } from "../Message.js"
import type { CompletionResult, StreamEvent } from "../Reply.js"
import { Usage } from "../Usage.js"
import * as Projection from "./projection.js"

/** `llm`, whose streams tell `onFinish` of each `Finish` as it passes (the tool loop emits only its last step's). */
export const onStreamFinish = (
  llm: Llm.Service,
  onFinish: (finish: Extract<StreamEvent, { readonly _tag: "Finish" }>) => void
): Llm.Service => ({
  ...llm,
  stream: (messages, options) =>
    Projection.mapEvents(llm.stream(messages, options), (events) => {
      for (const event of events) if (event._tag === "Finish") onFinish(event)
      return events
    })
})

/**
 * `llm`, with `record` called once per call that reported usage. With
 * `finishes: false` a stream's `Finish` is the caller's to record (a tool
 * loop sees every step's: `Toolkit.stream`'s `onEvent`), and only a failure's
 * usage is recorded here. Either way the meter adds no stage: its work runs
 * where the backend's stream decodes its events.
 */
export const metered = (
  llm: Llm.Service,
  record: (usage: Usage) => void,
  { finishes = true }: { readonly finishes?: boolean } = {}
): Llm.Service => {
  const onError = (error: LlmError) => Effect.sync(() => error.usage === undefined ? undefined : record(error.usage))
  const whole = (
    call: (messages: ReadonlyArray<Message>, options?: CompletionOptions) => Effect.Effect<CompletionResult, LlmError>
  ) =>
  (messages: ReadonlyArray<Message>, options?: CompletionOptions) =>
    Effect.tapBoth(call(messages, options), {
      onSuccess: (result) => Effect.sync(() => record(Usage.billed(result))),
      onFailure: onError
    })
  const warm = llm.warm
  const streams = finishes ? onStreamFinish(llm, (finish) => record(Usage.billed(finish))) : llm
  return {
    ...llm,
    complete: whole(llm.complete),
    stream: (messages, options) => {
      const events = streams.stream(messages, options)
      return Projection.projectable(<A>(projection: Projection.Projection<A>) =>
        Stream.tapError(Projection.project(events, projection), onError)
      )
    },
    ...(warm === undefined ? {} : { warm: whole(warm) })
  }
}
