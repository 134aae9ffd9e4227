/**
 * effect-llm with the layers users stack on `Llm.streamText`, one per
 * `target.variant`, over the `Local` backend (Chat Completions) on its
 * default transport, as an application writes them:
 * - `fallback`: `Llm.streamText` through `Fallback.layer` of the backend twice (the first answers);
 * - `conversation`: `Conversation.sendStream` of a fresh conversation per stream, its text deltas
 *   (`LlmStream.textDeltas`);
 * - `conversation-reused`: the same turn on one conversation for every stream, keeping one turn
 *   (`maxTurns: 1`, so the history stays one turn long): a turn's cost without building the conversation;
 * - `toolkit`: `Toolkit.stream` with one tool: the model calls it once, then answers;
 * - `sentences`: `LlmStream.sentences` of `Llm.stream` (the chunks a voice turn speaks);
 * - `speak`: `Conversation.speak` of a fresh conversation per stream, with a sink that does nothing;
 * - `speak-reused`: the same spoken turn on one reused conversation (as `conversation-reused`);
 * - `object`: `Llm.streamObject` of a structured-output reply (partials, then the decoded value).
 *
 * Each checks its own output (the sentences rejoined, the recorded reply,
 * the decoded value) and hands the worker the reply's text once it is
 * right (see `ClientSpec.selfChecked`), so it runs the CPU rows only.
 */
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import {
  Conversation,
  ConversationContext,
  Fallback,
  Llm,
  LlmStream,
  Local,
  Message,
  Tool,
  Toolkit
} from "../../src/index.js"
import { baseOf, type BenchClient, type Target } from "../client.js"
import { benchTool, expectedText, model, objectValue, prompt } from "../payloads.js"

const ObjectSchema = Schema.Struct({ title: Schema.String, words: Schema.Array(Schema.String) })

const kit = Toolkit.make(
  Tool.make(benchTool.name, {
    description: "Looks a word up.",
    parameters: Schema.Struct({ query: Schema.String }),
    handler: ({ query }) => Effect.succeed({ found: query })
  })
)

const fail = (what: string, got: unknown): Effect.Effect<never> =>
  Effect.die(new Error(`${what}: got ${JSON.stringify(got).slice(0, 80)}…`))

/** The sentences rejoined: the reply's text, its spaces at the cuts restored. */
const checkSentences = (sentences: ReadonlyArray<string>) =>
  sentences.join(" ") === expectedText ? Effect.void : fail("wrong sentences", sentences)

export default (target: Target): BenchClient => {
  const backend = Local.layer({ baseUrl: baseOf(target), model })
  const llm = target.variant === "fallback" ? Fallback.layer([backend, backend]) : backend
  const runtime = ManagedRuntime.make(llm as Layer.Layer<Llm.Llm>)
  const messages = [Message.system(prompt.system), Message.user(prompt.user)]
  const fresh = Conversation.make(ConversationContext.make({ systemMessage: prompt.system }))
  // built once, on the runtime's first use; one turn kept, so every turn sends the same history
  let kept: Conversation.Conversation.Service | undefined
  const reused = Effect.suspend(() =>
    kept !== undefined ? Effect.succeed(kept) : Effect.map(
      Effect.scoped(Conversation.make(ConversationContext.make({ systemMessage: prompt.system, maxTurns: 1 }))),
      (made) => (kept = made)
    )
  )
  const conversation = target.variant === "conversation-reused" || target.variant === "speak-reused" ? reused : fresh
  const texts = (self: Stream.Stream<LlmStream.StreamEvent, unknown, never>) =>
    Stream.runFold(LlmStream.textDeltas(self), "", (acc, text) => acc + text)
  const once: Effect.Effect<void, unknown, Llm.Llm> = (() => {
    switch (target.variant) {
      case "fallback":
        return Effect.flatMap(
          Stream.runFold(Llm.streamText(messages), "", (acc, text) => acc + text),
          (text) => text === expectedText ? Effect.void : fail("wrong text", text)
        )
      case "conversation":
      case "conversation-reused":
        return Effect.scoped(Effect.flatMap(conversation, (c) =>
          Effect.flatMap(
            texts(c.sendStream(prompt.user) as Stream.Stream<LlmStream.StreamEvent, unknown, never>),
            (text) => text === expectedText ? Effect.void : fail("wrong text", text)
          )))
      case "toolkit":
        return Effect.flatMap(
          texts(Toolkit.stream(messages, kit) as Stream.Stream<LlmStream.StreamEvent, unknown, never>),
          (text) => text === expectedText ? Effect.void : fail("wrong text", text)
        )
      case "sentences":
        return Effect.flatMap(
          Stream.runCollect(LlmStream.sentences(Llm.stream(messages))),
          (chunk) => checkSentences([...chunk])
        )
      case "speak":
      case "speak-reused":
        return Effect.scoped(Effect.flatMap(conversation, (c) =>
          Effect.flatMap(
            c.speak(prompt.user, { sink: () => Effect.void }),
            (result) => result.content === expectedText ? Effect.void : fail("wrong reply", result.content)
          )))
      case "object":
        return Effect.flatMap(
          Stream.runLast(Llm.streamObject(messages, ObjectSchema)),
          (last) =>
            last._tag === "Some" && last.value._tag === "Done" &&
              JSON.stringify(last.value.result.value) === JSON.stringify(objectValue)
              ? Effect.void
              : fail("wrong object", last)
        )
      default:
        throw new Error(`unknown variant ${String(target.variant)}`)
    }
  })()
  return {
    complete: () => Promise.reject(new Error("the layered clients only stream")),
    stream: (onText) => runtime.runPromise(Effect.map(once, () => onText(expectedText))),
    close: () => runtime.dispose()
  }
}
