/**
 * The layers on a backend's stream run their per-batch work where the
 * backend decodes its events (`internal/projection.ts`): the meter, the
 * overflow guard, the tool loop, a conversation's turn, a spoken turn and
 * `sentences`. Each must give exactly what it gives with that work in
 * stages of its own (the backend's stream wrapped so that it carries no
 * projection): the same events, texts, sentences, history and failures,
 * however the network cut the reply. Over loopback to the fake provider.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Context from "../src/Context.js"
import * as Conversation from "../src/Conversation.js"
import { isProjectable } from "../src/internal/projection.js"
import * as Llm from "../src/Llm.js"
import * as Message from "../src/Message.js"
import * as LlmStream from "../src/Stream.js"
import * as Tool from "../src/Tool.js"
import * as Toolkit from "../src/Toolkit.js"
import { backends } from "./support/backends.js"
import * as FakeProvider from "./support/FakeProvider.js"

const text = "One is first. Two is second, and longer! Three ends it."
const Titled = Schema.Struct({ title: Schema.String, words: Schema.Array(Schema.String) })
const titled = { title: "One is first.", words: ["two", "three"] }
const lookup = { id: "call_1", name: "lookup", arguments: { query: "one" } }

const kit = Toolkit.make(
  Tool.make("lookup", {
    description: "Looks a word up.",
    parameters: Schema.Struct({ query: Schema.String }),
    handler: ({ query }) => Effect.succeed({ found: query })
  })
)

/** What one turn's requests answer: a list of scripts, in order. */
const scenarios: ReadonlyArray<readonly [string, ReadonlyArray<FakeProvider.Script>]> = [
  ["a reply with reasoning, two bytes a read", [{ kind: "reply", text, chunkSize: 2, reasoning: "Count first." }]],
  ["one event per read", [{ kind: "reply", text, chunkSize: 4, delayMs: 2 }]],
  ["one read", [{ kind: "reply", text, chunkSize: 1000 }]],
  ["a tool step, then the answer", [
    { kind: "reply", text: "Let me check.", chunkSize: 3, toolCalls: [lookup] },
    { kind: "reply", text, chunkSize: 5 }
  ]],
  ["an in-band error mid-reply", [
    {
      kind: "reply",
      text,
      chunkSize: 4,
      inBandError: { afterEvents: 5, type: "overloaded_error", message: "Overloaded" }
    }
  ]],
  ["a reply cut off", [{ kind: "reply", text, chunkSize: 3, omitTerminator: true }]],
  ["a malformed event", [{ kind: "reply", text, malformedAfterEvents: 3 }]],
  ["a JSON object, three bytes a read", [{ kind: "reply", text: JSON.stringify(titled), chunkSize: 3 }]]
]

/** The backend's `Llm`, its streams wrapped so that they carry no projection: every layer's work in a stage. */
const staged = Layer.effect(
  Llm.Llm,
  Effect.map(Llm.Llm, (llm): Llm.Llm.Service => ({
    ...llm,
    stream: (messages, options) => Stream.map(llm.stream(messages, options), (event) => event)
  }))
)

/** How an effect ended: its value, or its failure's tag and message. */
const ended = <A, E extends { readonly _tag: string; readonly message: string }, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.map(
    Effect.either(effect),
    (either) =>
      either._tag === "Right" ? { done: either.right } : { failed: `${either.left._tag}: ${either.left.message}` }
  )

/** An event as a test compares it: its tag and text (the rest carries ids and timings). */
const shown = (event: LlmStream.StreamEvent) =>
  event._tag === "TextDelta" || event._tag === "ReasoningDelta" ? `${event._tag}:${event.text}` : event._tag

/** What the conversation recorded: each message's role, text and whether it was interrupted. */
const recorded = (conversation: Conversation.Conversation.Service) =>
  Effect.map(conversation.context, (context) =>
    context.history.map((message) => ({
      role: message.role,
      content: "content" in message ? message.content : undefined,
      interrupted: "interrupted" in message ? message.interrupted : undefined
    })))

/** Each path as an application writes it, and what it produced. */
const paths = {
  "Toolkit.stream, its text": Effect.map(
    ended(Stream.runCollect(LlmStream.textDeltas(Toolkit.stream([Message.user("Go")], kit)))),
    (outcome) => "done" in outcome ? { done: Chunk.toReadonlyArray(outcome.done).join("") } : outcome
  ),
  "LlmStream.sentences": Effect.map(
    ended(Stream.runCollect(LlmStream.sentences(Llm.stream([Message.user("Go")]), { minLength: 5 }))),
    (outcome) => "done" in outcome ? { done: Chunk.toReadonlyArray(outcome.done) } : outcome
  ),
  "Conversation.sendStream": Effect.scoped(Effect.gen(function*() {
    const conversation = yield* Conversation.make(Context.make({ systemMessage: "Be brief." }))
    const events = yield* ended(Stream.runCollect(conversation.sendStream("Go", { toolkit: kit })))
    return {
      events: "done" in events ? Chunk.toReadonlyArray(events.done).map(shown) : events,
      history: yield* recorded(conversation)
    }
  })),
  "Conversation.sendStream, stopped after three events": Effect.scoped(Effect.gen(function*() {
    const conversation = yield* Conversation.make(Context.make({ systemMessage: "Be brief." }))
    const events = yield* ended(Stream.runCollect(Stream.take(conversation.sendStream("Go", { toolkit: kit }), 3)))
    const history = yield* recorded(conversation)
    if ("failed" in events) return { events, history }
    const handed = Chunk.toReadonlyArray(events.done)
    const last = history.at(-1)
    const handedText = handed.map((event) => event._tag === "TextDelta" ? event.text : "").join("")
    return {
      events: handed.map(shown),
      history,
      // the text of the events it was handed is recorded, marked interrupted unless the Finish was among them
      // (no text handed: the user's message alone)
      recordsWhatWasHanded: handedText === ""
        ? last?.role === "user"
        : last?.role === "assistant" && last.content === handedText &&
          (last.interrupted === true) === !handed.some((event) => event._tag === "Finish")
    }
  })),
  "Llm.streamObject": Effect.map(
    ended(Stream.runCollect(Llm.streamObject([Message.user("Go")], Titled))),
    (outcome) =>
      "done" in outcome
        ? {
          done: Chunk.toReadonlyArray(outcome.done).map((event) =>
            event._tag === "Done" ? { done: event.result.value } : event._tag === "Partial" ? event.partial : event
          )
        }
        : outcome
  ),
  "Conversation.speak": Effect.scoped(Effect.gen(function*() {
    const conversation = yield* Conversation.make(Context.make({ systemMessage: "Be brief." }))
    const played: Array<string> = []
    const result = yield* ended(conversation.speak("Go", {
      toolkit: kit,
      chunks: { minLength: 5 },
      sink: (chunk) => Effect.sync(() => void played.push(chunk))
    }))
    return {
      played,
      result: "done" in result ? { content: result.done.content, finishReason: result.done.finishReason } : result,
      history: yield* recorded(conversation)
    }
  }))
} satisfies Record<string, Effect.Effect<unknown, never, Llm.Llm>>
const pathList: ReadonlyArray<readonly [string, Effect.Effect<unknown, never, Llm.Llm>]> = Object.entries(paths)

const sentencesOf = ["One is first.", "Two is second, and longer!", "Three ends it."]
/** What each path gives of a reply that ends well, without (`plain`) or with a tool step first (`tool`). */
const wellEnded = (tool: boolean): Record<string, unknown> => {
  const said = tool ? "Let me check." : ""
  return {
    "Toolkit.stream, its text": { done: said + text },
    // one model call: with a tool step first, its text alone
    "LlmStream.sentences": { done: tool ? ["Let me check."] : sentencesOf },
    "Conversation.sendStream": {
      history: expect.arrayContaining([{ role: "assistant", content: text, interrupted: undefined }])
    },
    "Conversation.sendStream, stopped after three events": { recordsWhatWasHanded: true },
    "Conversation.speak": {
      played: tool ? ["Let me check.", ...sentencesOf] : sentencesOf,
      result: { content: text, finishReason: "stop" },
      history: expect.arrayContaining([{ role: "assistant", content: text, interrupted: undefined }])
    }
  }
}
const endsWell = new Map<string, Record<string, unknown>>([
  ["a reply with reasoning, two bytes a read", wellEnded(false)],
  ["one event per read", wellEnded(false)],
  ["one read", wellEnded(false)],
  ["a tool step, then the answer", wellEnded(true)],
  // partials as the object grows, then the decoded value
  ["a JSON object, three bytes a read", {
    "Llm.streamObject": {
      done: expect.arrayContaining([titled, { done: titled }])
    }
  }]
])

for (const backend of backends.filter((b) => b.name === "local" || b.name === "anthropic")) {
  describe(`the layers' work where the events are decoded: ${backend.name}`, () => {
    /** `effect` on a fresh fake server answering `scripts`, on the backend, or on it with every stage apart. */
    const run = <A>(
      scripts: ReadonlyArray<FakeProvider.Script>,
      inStages: boolean,
      effect: Effect.Effect<A, never, Llm.Llm>
    ) =>
      Effect.scoped(Effect.gen(function*() {
        const server = yield* FakeProvider.make
        server.enqueue(...scripts)
        const layer = backend.layer(server.url, { retry: { maxRetries: 0 } })
        return yield* Effect.provide(effect, inStages ? Layer.provide(staged, layer) : layer)
      }))

    it.live("the tool loop, a turn and the meter keep the backend's projection", () =>
      run(
        [{ kind: "reply", text }],
        false,
        Effect.scoped(Effect.gen(function*() {
          expect(isProjectable(Toolkit.stream([Message.user("Go")], kit))).toBe(true)
          const conversation = yield* Conversation.make(Context.make({}))
          expect(isProjectable(conversation.sendStream("Go", { toolkit: kit }))).toBe(true)
          // a wrapper that changes the events carries none, so each layer's work goes in a stage after it
          const wrapped = yield* Effect.provide(
            Effect.map(Llm.Llm, (llm) => isProjectable(llm.stream([Message.user("Go")]))),
            Layer.provide(staged, Layer.succeed(Llm.Llm, yield* Llm.Llm))
          )
          expect(wrapped).toBe(false)
        }))
      ))

    for (const [name, scripts] of scenarios) {
      for (const [path, effect] of pathList) {
        it.live(`${path}, ${name}: as in stages of its own`, () =>
          Effect.gen(function*() {
            const fused = yield* run(scripts, false, effect)
            const inStages = yield* run(scripts, true, effect)
            expect(fused).toEqual(inStages)
            // and a turn that ends well delivers and records the reply
            const expected = endsWell.get(name)?.[path]
            if (expected !== undefined) expect(fused as object).toMatchObject(expected as object)
          }))
      }
    }
  })
}
