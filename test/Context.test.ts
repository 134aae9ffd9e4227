import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as fc from "fast-check"
import * as Context from "../src/Context.js"
import { validateRequest } from "../src/internal/validate.js"
import * as Message from "../src/Message.js"
import type { Message as Msg } from "../src/Message.js"
import * as TokenCounter from "../src/TokenCounter.js"

/** A random history of turns; some turns contain tool groups, some with missing results. */
const historyArbitrary = fc.array(
  fc.record({
    user: fc.string({ maxLength: 40 }),
    steps: fc.array(
      fc.record({
        text: fc.string({ maxLength: 30 }),
        calls: fc.integer({ min: 0, max: 3 }),
        answered: fc.boolean()
      }),
      { maxLength: 3 }
    )
  }),
  { maxLength: 25 }
)

let ids = 0
const build = (
  turns: typeof historyArbitrary extends fc.Arbitrary<infer T> ? T : never,
  options: Context.ContextOptions
) => {
  let context = Context.make(options)
  for (const turn of turns) {
    context = context.addUser(turn.user)
    for (const step of turn.steps) {
      const calls = Array.from({ length: step.calls }, () => ({ id: `c${ids++}`, name: "tool", arguments: { n: 1 } }))
      context = context.addAssistant({ content: step.text, toolCalls: calls })
      calls.forEach((call, i) => {
        if (step.answered || i === 0) {
          context = context.addToolResult({ toolCallId: call.id, name: "tool", content: "r" })
        }
      })
    }
  }
  return context
}

const checkInvariants = (messages: ReadonlyArray<Msg>, systemMessage: string | undefined) => {
  if (systemMessage !== undefined) expect(messages[0]).toMatchObject({ role: "system", content: systemMessage })
  const history = systemMessage === undefined ? messages : messages.slice(1)
  if (history.length > 0) expect(history[0]!.role).toBe("user")
  // the same rule the provider layers enforce before sending: no orphans either way
  if (history.length > 0) expect(validateRequest(messages, {})).toBeUndefined()
}

describe("ConversationContext", () => {
  it("records the seed's multi-turn exchange", () => {
    const context = Context.make({ systemMessage: "You are helpful." })
      .addUser("My name is Alice.")
      .addAssistant({ content: "Nice to meet you, Alice!" })
      .addUser("What is my name?")
    expect(context.messages.map((m) => [m.role, m.content])).toEqual([
      ["system", "You are helpful."],
      ["user", "My name is Alice."],
      ["assistant", "Nice to meet you, Alice!"],
      ["user", "What is my name?"]
    ])
    expect(context.turns.length).toBe(2)
  })

  it("keeps the newest whole turns within maxTurns, system message always kept", () => {
    let context = Context.make({ systemMessage: "sys", maxTurns: 2 })
    for (let i = 0; i < 5; i++) context = context.addUser(`q${i}`).addAssistant({ content: `a${i}` })
    expect(context.messages.map((m) => m.content)).toEqual(["sys", "q3", "a3", "q4", "a4"])
  })

  it("prunes to a token budget but always keeps the newest turn", () => {
    let context = Context.make({ maxTurns: 100, maxTokens: 30 })
    for (let i = 0; i < 10; i++) context = context.addUser("x".repeat(40)).addAssistant({ content: "y".repeat(40) })
    const tokens = context.messages.reduce((sum, m) => sum + Context.estimateTokens(m), 0)
    expect(context.turns.length).toBe(1)
    expect(tokens).toBe(28)
    const huge = Context.make({ maxTokens: 30 }).addUser("old").addUser("z".repeat(400))
    expect(huge.messages.map((m) => m.content)).toEqual(["z".repeat(400)])
    const small = Context.make({ maxTokens: 1000 }).addUser("hi").addAssistant({ content: "hello" }).addUser("again")
    expect(small.turns.length).toBe(2)
  })

  it("drops tool calls that never got their results", () => {
    const context = Context.make()
      .addUser("q")
      .addAssistant({
        content: "Let me check.",
        toolCalls: [{ id: "a", name: "t", arguments: {} }, { id: "b", name: "t", arguments: {} }]
      })
      .addToolResult({ toolCallId: "a", name: "t", content: "r" })
    expect(context.messages.map((m) => m.role)).toEqual(["user", "assistant"])
    expect(context.messages[1]).toMatchObject({ content: "Let me check.", toolCalls: [] })
    expect(context.dropUnansweredToolCalls().history.length).toBe(2)
  })

  it("encodes to JSON and decodes back to an equal context", () => {
    const context = Context.make({ systemMessage: "s", maxTurns: 3, maxTokens: 500 })
      .addUser("q")
      .addAssistant({ content: "", toolCalls: [{ id: "a", name: "t", arguments: { k: [1, 2] } }] })
      .addToolResult({ toolCallId: "a", name: "t", content: "r", isError: true })
    const json = JSON.parse(JSON.stringify(context.encode()))
    const decoded = Context.decode(json)
    expect(decoded.messages.map((m) => ({ ...m }))).toEqual(context.messages.map((m) => ({ ...m })))
    expect(decoded.maxTokens).toBe(500)
  })

  it("holds its invariants on random histories (property)", () => {
    fc.assert(
      fc.property(
        historyArbitrary,
        fc.integer({ min: 1, max: 6 }),
        fc.option(fc.integer({ min: 10, max: 400 })),
        (turns, maxTurns, maxTokens) => {
          const context = build(turns, { systemMessage: "sys", maxTurns, maxTokens: maxTokens ?? undefined })
          const messages = context.messages
          checkInvariants(messages, "sys")
          expect(context.turns.length).toBeLessThanOrEqual(maxTurns)
          if (turns.length > 0) {
            // the newest turn is always there
            const lastUser = [...messages].reverse().find((m) => m.role === "user")
            expect(lastUser?.content).toBe(turns[turns.length - 1]!.user)
          }
          if (maxTokens != null && context.turns.length > 1) {
            const total = messages.reduce((sum, m) => sum + Context.estimateTokens(m), 0)
            expect(total).toBeLessThanOrEqual(maxTokens)
          }
        }
      ),
      { numRuns: 300 }
    )
  })
})

describe("TokenCounter.openAi", () => {
  it.effect("counts with the o200k_base encoding plus the message framing", () =>
    Effect.gen(function*() {
      const counter = yield* TokenCounter.TokenCounter
      // "Hello, world! How are you today?" is 9 tokens in o200k_base
      expect(counter.count(Message.user("Hello, world! How are you today?"))).toBe(12)
      const withCall = Message.assistant("", [{ id: "c", name: "get_weather", arguments: { city: "Oslo" } }])
      expect(counter.count(withCall)).toBeGreaterThan(counter.count(Message.assistant("")))
      // a budget measured exactly
      const context = Context.make({ maxTurns: 100, maxTokens: 40 })
        .addUser("Hello, world! How are you today?", counter.count)
        .addAssistant({ content: "Fine, thanks." }, counter.count)
        .addUser("Hello, world! How are you today?", counter.count)
      expect(context.turns.length).toBe(2)
      expect(context.addUser("word ".repeat(40), counter.count).turns.length).toBe(1)
    }).pipe(Effect.provide(TokenCounter.openAi)))
})
