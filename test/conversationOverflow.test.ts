/**
 * A conversation whose history no longer fits the server's context (issue
 * 17): with `onOverflow: "prune"` (the default) it prunes the history to fit,
 * aiming below the size the error gives, and retries once by itself; with
 * `"fail"`, or when pruning cannot help, the error is final and the
 * conversation stays as it was. Over loopback against a fake server that
 * counts 100 tokens a message and refuses what exceeds its context the way
 * llama-server, Ollama and Anthropic do.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as ConversationContext from "../src/Context.js"
import * as Conversation from "../src/Conversation.js"
import { isContextOverflow } from "../src/errors.js"
import { validateRequest } from "../src/internal/validate.js"
import * as TokenCounter from "../src/TokenCounter.js"
import * as Tool from "../src/Tool.js"
import * as Toolkit from "../src/Toolkit.js"
import { backends } from "./support/backends.js"
import type * as FakeProvider from "./support/FakeProvider.js"
import * as Fake from "./support/FakeProvider.js"

const tokensPerMessage = 100

/** How a server refuses what does not fit: with the sizes (llama-server, Anthropic) or bare (Ollama). */
type Refusal = "llama" | "ollama" | "anthropic"

/** The messages a request carried, the system prompt first (Anthropic sends it apart). */
const sentOf = (request: FakeProvider.RecordedRequest): Array<string> => {
  const body = request.body as {
    readonly system?: unknown
    readonly messages: ReadonlyArray<{ readonly role: string; readonly content: unknown }>
  }
  // a string, or content blocks (Anthropic's, with cache breakpoints)
  const textOf = (content: unknown, otherwise: string) =>
    typeof content === "string"
      ? content
      : Array.isArray(content)
      ? (content as ReadonlyArray<{ type: string; text?: string; content?: string }>)
        .map((block) => block.text ?? block.content ?? block.type).join("+")
      : otherwise
  const texts = body.messages.map((message) => textOf(message.content, message.role))
  return body.system === undefined ? texts : [textOf(body.system, "system"), ...texts]
}

/**
 * Answers like a server with a context of `ctx` tokens: a request of more
 * (100 a message) is refused as `refusal` says; one that fits gets `answer`.
 */
const limited = (
  server: FakeProvider.FakeProvider,
  ctx: number,
  refusal: Refusal,
  answer: (request: FakeProvider.RecordedRequest) => FakeProvider.Script = () => ({ kind: "reply", text: "ok" })
) =>
  server.respond((request) => {
    const prompt = sentOf(request).length * tokensPerMessage
    if (prompt <= ctx) return answer(request)
    switch (refusal) {
      case "llama":
        return {
          kind: "status",
          status: 400,
          headers: { connection: "close" },
          body: {
            error: {
              code: 400,
              message:
                `request (${prompt} tokens) exceeds the available context size (${ctx} tokens), try increasing it`,
              type: "exceed_context_size_error",
              n_prompt_tokens: prompt,
              n_ctx: ctx
            }
          }
        }
      case "ollama":
        return { kind: "status", status: 400, body: { error: "the input length exceeds the context length" } }
      case "anthropic":
        return {
          kind: "status",
          status: 400,
          body: {
            type: "error",
            error: { type: "invalid_request_error", message: `prompt is too long: ${prompt} tokens > ${ctx} maximum` }
          }
        }
    }
  })

/** A conversation with a system prompt and four earlier turns, each message the same size. */
const fourTurns = (): ConversationContext.ConversationContext => {
  let context = ConversationContext.make({ systemMessage: "sys", maxTurns: 10 })
  for (const n of [1, 2, 3, 4]) context = context.addUser(`q${n}`).addAssistant({ content: `a${n}` })
  return context
}

const local = backends.find((backend) => backend.name === "local")!
const anthropic = backends.find((backend) => backend.name === "anthropic")!

/** Runs `f` with a conversation over `backend` on a fresh server, starting from `initial`. */
const withConversation = <A, E>(
  f: (server: FakeProvider.FakeProvider, conversation: Conversation.Conversation.Service) => Effect.Effect<A, E>,
  options: {
    readonly backend?: typeof local
    readonly initial?: ConversationContext.ConversationContext
    readonly onOverflow?: "prune" | "fail"
    readonly counter?: Layer.Layer<TokenCounter.TokenCounter>
  } = {}
) =>
  Effect.scoped(Effect.gen(function*() {
    const server = yield* Fake.make
    const llm = (options.backend ?? local).layer(server.url, { retry: { maxRetries: 0 } })
    const conversation = yield* Conversation.make(
      options.initial ?? fourTurns(),
      options.onOverflow === undefined ? {} : { onOverflow: options.onOverflow }
    ).pipe(Effect.provide(options.counter === undefined ? llm : Layer.merge(llm, options.counter)))
    return yield* f(server, conversation)
  }))

const perMessage = TokenCounter.layer(() => tokensPerMessage)

const history = (context: ConversationContext.ConversationContext) => context.history.map((m) => m.content)

describe("Conversation onOverflow: prune (the default)", () => {
  for (const [label, counter] of [["with a TokenCounter", perMessage], ["with the estimate", undefined]] as const) {
    it.live(`prunes below the context the error names and retries once (${label})`, () =>
      withConversation((server, conversation) =>
        Effect.gen(function*() {
          // sys + 4 turns + the new message: 1000 tokens; the server holds 450
          limited(server, 450, "llama")
          const result = yield* conversation.send("q5")
          expect(result.content).toBe("ok")
          expect(server.requests.map(sentOf)).toEqual([
            ["sys", "q1", "a1", "q2", "a2", "q3", "a3", "q4", "a4", "q5"],
            // 90% of 450 holds the system prompt, the newest earlier turn and the new message
            ["sys", "q4", "a4", "q5"]
          ])
          expect(history(yield* conversation.context)).toEqual(["q4", "a4", "q5", "ok"])
        }), counter === undefined ? {} : { counter }))
  }

  it.live("without sizes in the error, drops the oldest half of the turns", () =>
    withConversation((server, conversation) =>
      Effect.gen(function*() {
        limited(server, 650, "ollama")
        yield* conversation.send("q5")
        expect(server.requests.map(sentOf)).toEqual([
          ["sys", "q1", "a1", "q2", "a2", "q3", "a3", "q4", "a4", "q5"],
          ["sys", "q3", "a3", "q4", "a4", "q5"]
        ])
        expect(history(yield* conversation.context)).toEqual(["q3", "a3", "q4", "a4", "q5", "ok"])
      }), { counter: perMessage }))

  it.live("Anthropic's prompt is too long, whole and streamed", () =>
    withConversation((server, conversation) =>
      Effect.gen(function*() {
        limited(server, 450, "anthropic")
        expect((yield* conversation.send("q5")).content).toBe("ok")
        expect(server.requests.map(sentOf)).toEqual([
          ["sys", "q1", "a1", "q2", "a2", "q3", "a3", "q4", "a4", "q5"],
          ["sys", "q4", "a4", "q5"]
        ])
        // streamed, on a history as long again: the room learned above prunes it before it is sent (to three
        // quarters of 405 tokens: the system prompt and the new message), so nothing is refused
        server.clearRequests()
        yield* conversation.set(fourTurns())
        const events = yield* Stream.runCollect(conversation.sendStream("q5"))
        const texts = Chunk.toArray(events).flatMap((event) => event._tag === "TextDelta" ? [event.text] : [])
        expect(texts.join("")).toBe("ok")
        expect(server.requests.map(sentOf)).toEqual([["sys", "q5"]])
        expect(history(yield* conversation.context)).toEqual(["q5", "ok"])
      }), { backend: anthropic, counter: perMessage }))

  it.live("sendStream prunes and retries before anything reaches the consumer", () =>
    withConversation((server, conversation) =>
      Effect.gen(function*() {
        limited(server, 450, "llama")
        const events = Chunk.toArray(yield* Stream.runCollect(conversation.sendStream("q5")))
        expect(events.flatMap((event) => event._tag === "TextDelta" ? [event.text] : []).join("")).toBe("ok")
        expect(events.filter((event) => event._tag === "Finish").length).toBe(1)
        expect(server.requests.map(sentOf)).toEqual([
          ["sys", "q1", "a1", "q2", "a2", "q3", "a3", "q4", "a4", "q5"],
          ["sys", "q4", "a4", "q5"]
        ])
        expect(history(yield* conversation.context)).toEqual(["q4", "a4", "q5", "ok"])
      })
    ))

  it.live("an overflow inside a tool loop prunes the earlier turns and retries that step: the tool runs once", () =>
    Effect.gen(function*() {
      let runs = 0
      const weather = Tool.make("get_weather", {
        description: "Current weather",
        parameters: Schema.Struct({ city: Schema.String }),
        handler: () => Effect.sync(() => (runs++, "4°C, rain"))
      })
      const kit = Toolkit.make(weather)
      const answer = (request: FakeProvider.RecordedRequest): FakeProvider.Script =>
        sentOf(request).at(-1) === "q5"
          ? { kind: "reply", toolCalls: [{ id: "call_1", name: "get_weather", arguments: { city: "Oslo" } }] }
          : { kind: "reply", text: "It is 4°C." }
      for (const streamed of [false, true]) {
        runs = 0
        yield* withConversation((server, conversation) =>
          Effect.gen(function*() {
            // the first step (1000 tokens) fits; with the call and its result (1200) it does not
            limited(server, 1150, "llama", answer)
            if (streamed) yield* Stream.runDrain(conversation.sendStream("q5", { toolkit: kit }))
            else expect((yield* conversation.send("q5", { toolkit: kit })).content).toBe("It is 4°C.")
            expect(runs).toBe(1)
            expect(server.requests.map(sentOf).map((sent) => sent.length)).toEqual([10, 12, 10])
            // 90% of 1150, less the step's call and result, holds the system prompt, three earlier turns and q5
            expect(sentOf(server.requests[2]!).slice(0, 8)).toEqual(["sys", "q2", "a2", "q3", "a3", "q4", "a4", "q5"])
            const context = yield* conversation.context
            expect(history(context)).toEqual(["q2", "a2", "q3", "a3", "q4", "a4", "q5", "", "4°C, rain", "It is 4°C."])
            expect(validateRequest(context.messages, {})).toBeUndefined()
          }), { counter: perMessage })
      }
    }))
})

describe("Conversation onOverflow: the room an overflow taught", () => {
  it.live("later turns are pruned before they are sent once the history outgrows it, and not before", () =>
    withConversation((server, conversation) =>
      Effect.gen(function*() {
        // a context of 1000 tokens: the first request (1000) fits; the second (1200) is refused once, pruned
        // to 90% of 1000 less the new message (sys, q3 … ok, q6 = 800) and retried: a room of 900 learned
        limited(server, 1000, "llama", () => ({ kind: "reply", text: "ok" }))
        yield* conversation.send("q5")
        yield* conversation.send("q6")
        expect(server.requests.map(sentOf).map((sent) => sent.length)).toEqual([10, 12, 8])
        expect(history(yield* conversation.context)).toEqual(["q3", "a3", "q4", "a4", "q5", "ok", "q6", "ok"])
        server.clearRequests()
        // 1000 tokens > 900: pruned to three quarters (675: sys, q5, ok, q6, ok, q7 = 600) before sending
        yield* conversation.send("q7")
        expect(server.requests.map(sentOf)).toEqual([["sys", "q5", "ok", "q6", "ok", "q7"]])
        // 800 tokens: within the room, sent whole (the same prefix, so the prompt cache holds)
        server.clearRequests()
        yield* conversation.send("q8")
        expect(server.requests.map(sentOf)).toEqual([["sys", "q5", "ok", "q6", "ok", "q7", "ok", "q8"]])
        expect(history(yield* conversation.context)).toEqual(["q5", "ok", "q6", "ok", "q7", "ok", "q8", "ok"])
      }), { counter: perMessage }))

  it.live("with onOverflow: \"fail\", nothing is learned: every turn is sent whole", () =>
    withConversation((server, conversation) =>
      Effect.gen(function*() {
        limited(server, 450, "llama")
        yield* Effect.flip(conversation.send("q5"))
        yield* Effect.flip(conversation.send("q5"))
        expect(server.requests.map(sentOf).map((sent) => sent.length)).toEqual([10, 10])
      }), { onOverflow: "fail", counter: perMessage }))

  it.live("an error without the context's size teaches nothing", () =>
    withConversation((server, conversation) =>
      Effect.gen(function*() {
        limited(server, 650, "ollama")
        yield* conversation.send("q5")
        yield* conversation.set(fourTurns())
        server.clearRequests()
        yield* conversation.send("q5")
        // refused again, then the oldest half dropped, as the first time
        expect(server.requests.map(sentOf).map((sent) => sent.length)).toEqual([10, 6])
      }), { counter: perMessage }))
})

describe("Conversation onOverflow: the error is final", () => {
  it.live("with onOverflow: \"fail\", after one request; the conversation is as it was", () =>
    withConversation((server, conversation) =>
      Effect.gen(function*() {
        limited(server, 450, "llama")
        const before = yield* conversation.context
        const error = yield* Effect.flip(conversation.send("q5"))
        expect(isContextOverflow(error)).toBe(true)
        const streamed = yield* Effect.flip(Stream.runDrain(conversation.sendStream("q5")))
        expect(isContextOverflow(streamed)).toBe(true)
        expect(server.requests.length).toBe(2)
        expect(yield* conversation.context).toBe(before)
      }), { onOverflow: "fail" }))

  it.live("when the pruned history still overflows: retried once only, then the error", () =>
    withConversation((server, conversation) =>
      Effect.gen(function*() {
        // not even the system prompt and the new message fit
        limited(server, 150, "llama")
        const before = yield* conversation.context
        const error = yield* Effect.flip(conversation.send("q5"))
        expect(isContextOverflow(error) && error.promptTokens).toBe(200)
        expect(server.requests.map(sentOf).map((sent) => sent.length)).toEqual([10, 2])
        expect(yield* conversation.context).toBe(before)
        server.clearRequests()
        const streamed = yield* Effect.flip(Stream.runDrain(conversation.sendStream("q5")))
        expect(isContextOverflow(streamed)).toBe(true)
        // the room learned from the first turn prunes the request before it is sent: one refusal, no retry
        expect(server.requests.map(sentOf).map((sent) => sent.length)).toEqual([2])
        expect(yield* conversation.context).toBe(before)
      }), { counter: perMessage }))

  it.live("when there is nothing to prune: no retry", () =>
    withConversation((server, conversation) =>
      Effect.gen(function*() {
        limited(server, 150, "llama")
        const error = yield* Effect.flip(conversation.send("q1"))
        expect(isContextOverflow(error)).toBe(true)
        expect(server.requests.length).toBe(1)
        expect((yield* conversation.context).history).toEqual([])
      }), { initial: ConversationContext.make({ systemMessage: "sys" }) }))

  it.live("an error that is not an overflow is not retried", () =>
    withConversation((server, conversation) =>
      Effect.gen(function*() {
        server.setDefault({ kind: "status", status: 400, message: "bad request" })
        const error = yield* Effect.flip(conversation.send("q5"))
        expect(error._tag).toBe("LlmInvalidRequestError")
        expect(server.requests.length).toBe(1)
      })
    ))
})

describe("Conversation.layer takes onOverflow", () => {
  it.live("with the context options", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* Fake.make
      limited(server, 150, "llama")
      const layer = Conversation.layer({ systemMessage: "sys", onOverflow: "fail" }).pipe(
        Layer.provide(local.layer(server.url))
      )
      const error = yield* Effect.flip(
        Effect.flatMap(Conversation.Conversation, (conversation) => conversation.send("q1")).pipe(
          Effect.provide(layer)
        )
      )
      expect(isContextOverflow(error)).toBe(true)
      expect(server.requests.length).toBe(1)
    })))
})
