/**
 * An `Llm` that reports what each of its calls was billed for: a reply's
 * `Usage.billed` (its own usage and that of the attempts that failed before
 * it), a failed call's `error.usage`. A call that reported nothing (a stream
 * interrupted before its end) reports nothing.
 *
 * @internal
 */
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import type { LlmError } from "../errors.js"
import type { CompletionOptions, Llm } from "../Llm.js"
import type { Message } from "../Message.js"
import type { CompletionResult } from "../Reply.js"
import { Usage } from "../Usage.js"

/** `llm`, with `record` called once per call that reported usage. */
export const metered = (llm: Llm.Service, record: (usage: Usage) => void): Llm.Service => {
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
  return {
    ...llm,
    complete: whole(llm.complete),
    stream: (messages, options) =>
      llm.stream(messages, options).pipe(
        Stream.mapChunks((chunk) => {
          for (const event of Chunk.toReadonlyArray(chunk)) if (event._tag === "Finish") record(Usage.billed(event))
          return chunk
        }),
        Stream.tapError(onError)
      ),
    ...(warm === undefined ? {} : { warm: whole(warm) })
  }
}
