/**
 * ConversationContext's arithmetic and repairs at their edges (issue 13,
 * mutation testing): the token estimate's exact value, the budget compared
 * with `>` (an exact fit is kept), the system message and the newest turn
 * counted against the budget, the default of 10 turns, histories that only a
 * decoded context can hold, and the tool results `messages` drops or keeps.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Context from "../src/Context.js"
import * as Message from "../src/Message.js"
import type { Message as Msg } from "../src/Message.js"

const contents = (messages: ReadonlyArray<Msg>) => messages.map((m) => `${m.role}:${m.content}`)

/** `n` characters: with framing, `n / 4 + 4` tokens when `n` is a multiple of 4. */
const text = (n: number) => "x".repeat(n)

describe("estimateTokens", () => {
  it("is a quarter of the characters, rounded up, plus 4 per message", () => {
    expect(Context.estimateTokens(new Message.UserMessage({ content: "" }))).toBe(4)
    expect(Context.estimateTokens(new Message.UserMessage({ content: text(8) }))).toBe(6)
    expect(Context.estimateTokens(new Message.UserMessage({ content: text(9) }))).toBe(7)
    expect(Context.estimateTokens(new Message.ToolMessage({ toolCallId: "c", name: "t", content: text(4) }))).toBe(5)
  })

  it("counts a tool call's name, its arguments as JSON and 12 characters of framing", () => {
    // "t" (1) + "{}" (2) + 12 = 15 characters -> 4 tokens, + 4
    const one = new Message.AssistantMessage({
      content: "",
      toolCalls: [new Message.ToolCall({ id: "a", name: "t", arguments: {} })]
    })
    expect(Context.estimateTokens(one)).toBe(8)
    // "abc" (3) + "{\"k\":1}" (7) + 12 = 22, + content 2 = 24 characters -> 6 tokens, + 4
    const args = new Message.AssistantMessage({
      content: "hi",
      toolCalls: [new Message.ToolCall({ id: "a", name: "abc", arguments: { k: 1 } })]
    })
    expect(Context.estimateTokens(args)).toBe(10)
    expect(Context.estimateTokens(new Message.AssistantMessage({ content: text(8) }))).toBe(6)
  })
})

describe("pruning to maxTurns and maxTokens", () => {
  it("keeps 10 turns by default", () => {
    let context = Context.make()
    for (let i = 0; i < 12; i++) context = context.addUser(`q${i}`)
    expect(context.maxTurns).toBe(10)
    expect(contents(context.messages)).toEqual(Array.from({ length: 10 }, (_, i) => `user:q${i + 2}`))
  })

  it("keeps exactly maxTurns turns, not one more or less", () => {
    let context = Context.make({ maxTurns: 3 })
    for (let i = 0; i < 3; i++) context = context.addUser(`q${i}`)
    expect(context.turns.length).toBe(3)
    expect(context.addUser("q3").turns.map((t) => t.user.content)).toEqual(["q1", "q2", "q3"])
  })

  it("keeps an older turn that fits the budget exactly, drops it one token over", () => {
    // every message of 8 characters is 6 tokens; two turns of one message each are 12
    const two = (maxTokens: number) => Context.make({ maxTokens }).addUser(text(8)).addUser(text(8))
    expect(two(12).turns.length).toBe(2)
    expect(two(11).turns.length).toBe(1)
  })

  it("counts the newest turn against the budget", () => {
    // newest turn: 6 + 6 = 12 tokens; the older one 6: 18 in all
    const context = (maxTokens: number) =>
      Context.make({ maxTokens }).addUser(text(8)).addUser(text(8)).addAssistant({ content: text(8) })
    expect(context(18).turns.length).toBe(2)
    expect(context(17).turns.length).toBe(1)
  })

  it("counts every message of an older turn, and only its own", () => {
    // older turn: user + assistant, 12 tokens; newest turn: 6
    const context = (maxTokens: number) =>
      Context.make({ maxTokens }).addUser(text(8)).addAssistant({ content: text(8) }).addUser(text(8))
    expect(context(18).turns.length).toBe(2)
    expect(context(17).turns.length).toBe(1)
    // three turns of 6 tokens: the budget of 12 keeps the newest two, not the oldest
    const three = Context.make({ maxTokens: 12 }).addUser("aaaaaaaa").addUser("bbbbbbbb").addUser("cccccccc")
    expect(contents(three.messages)).toEqual(["user:bbbbbbbb", "user:cccccccc"])
  })

  it("counts the system message against the budget", () => {
    // system "xxxxxxxx": 6 tokens; two turns: 12
    const context = (maxTokens: number) =>
      Context.make({ systemMessage: text(8), maxTokens }).addUser(text(8)).addUser(text(8))
    expect(context(18).turns.length).toBe(2)
    expect(context(17).turns.length).toBe(1)
    // without a budget the system message costs nothing
    expect(Context.make({ systemMessage: text(400), maxTurns: 2 }).addUser("a").addUser("b").turns.length).toBe(2)
  })

  it("uses the token counter it is given", () => {
    const one = () => 1
    const context = Context.make({ maxTokens: 3 })
      .addUser(text(100), one)
      .addUser(text(100), one)
      .addUser(text(100), one)
    expect(context.turns.length).toBe(3)
    expect(context.addUser(text(100), one).turns.length).toBe(3)
    expect(context.addUser(text(100)).turns.length).toBe(1)
  })

  it("keeps nothing before the first user message", () => {
    expect(Context.make().addAssistant({ content: "unprompted" }).history).toEqual([])
    expect(
      Context.make().addToolResult({ toolCallId: "a", name: "t", content: "r" }).history
    ).toEqual([])
  })
})

describe("repairing the history that is sent", () => {
  it("drops a tool result that follows no call", () => {
    const context = Context.make().addUser("q").addToolResult({ toolCallId: "a", name: "t", content: "r" })
    expect(contents(context.messages)).toEqual(["user:q"])
    expect(contents(context.dropUnansweredToolCalls().history)).toEqual(["user:q"])
  })

  it("drops a result whose call the assistant never made, keeps the answered call", () => {
    const context = Context.make()
      .addUser("q")
      .addAssistant({ content: "", toolCalls: [{ id: "a", name: "t", arguments: {} }] })
      .addToolResult({ toolCallId: "a", name: "t", content: "ra" })
      .addToolResult({ toolCallId: "x", name: "t", content: "rx" })
      .addAssistant({ content: "done" })
    expect(context.messages.map((m) => m.role === "tool" ? `tool:${m.toolCallId}` : `${m.role}:${m.content}`)).toEqual([
      "user:q",
      "assistant:",
      "tool:a",
      "assistant:done"
    ])
    expect((context.messages[1] as Message.AssistantMessage).toolCalls.map((c) => c.id)).toEqual(["a"])
  })

  it("keeps a complete tool group as it is, and the messages after it", () => {
    const context = Context.make()
      .addUser("q")
      .addAssistant({
        content: "checking",
        toolCalls: [{ id: "a", name: "t", arguments: {} }, { id: "b", name: "t", arguments: {} }]
      })
      .addToolResult({ toolCallId: "b", name: "t", content: "rb" })
      .addToolResult({ toolCallId: "a", name: "t", content: "ra", isError: true })
      .addAssistant({ content: "done" })
      .addUser("next")
    expect(contents(context.messages)).toEqual([
      "user:q",
      "assistant:checking",
      "tool:rb",
      "tool:ra",
      "assistant:done",
      "user:next"
    ])
    // nothing to repair: the history itself is sent, not a copy
    expect(context.messages).toBe(context.history)
  })

  it("drops an unanswered call without text entirely, keeps one with text as text only", () => {
    const silent = Context.make()
      .addUser("q")
      .addAssistant({ content: "", toolCalls: [{ id: "a", name: "t", arguments: {} }] })
      .addUser("again")
    expect(contents(silent.messages)).toEqual(["user:q", "user:again"])
    const spoken = Context.make()
      .addUser("q")
      .addAssistant({
        content: "let me see",
        toolCalls: [{ id: "a", name: "t", arguments: {} }, { id: "b", name: "t", arguments: {} }]
      })
      .addToolResult({ toolCallId: "b", name: "t", content: "rb" })
      .addUser("again")
    expect(contents(spoken.messages)).toEqual(["user:q", "assistant:let me see", "user:again"])
    expect((spoken.messages[1] as Message.AssistantMessage).toolCalls).toEqual([])
  })

  it("records isError only on a failed tool result", () => {
    const context = Context.make()
      .addUser("q")
      .addAssistant({
        content: "",
        toolCalls: [{ id: "a", name: "t", arguments: {} }, { id: "b", name: "t", arguments: {} }]
      })
      .addToolResult({ toolCallId: "a", name: "t", content: "ok", isError: false })
      .addToolResult({ toolCallId: "b", name: "t", content: "boom", isError: true })
    const [, , ok, failed] = context.encode().history
    expect(Object.keys(ok!)).not.toContain("isError")
    expect(failed).toMatchObject({ isError: true })
  })

  it("keeps an AssistantMessage it is given as it is", () => {
    const reply = new Message.AssistantMessage({ content: "cut", interrupted: true })
    const context = Context.make().addUser("q").addAssistant(reply)
    expect(context.history[1]).toBe(reply)
  })
})

describe("a decoded context", () => {
  it("groups into turns only from the first user message, and leaves out system messages", () => {
    const context = Context.decode({
      maxTurns: 10,
      history: [
        { role: "assistant", content: "stray" },
        { role: "user", content: "q" },
        { role: "system", content: "s" },
        { role: "assistant", content: "a" }
      ]
    })
    expect(context.turns.map((t) => [t.user.content, t.replies.map((r) => r.content)])).toEqual([["q", ["a"]]])
  })

  it("prunes what comes before the first user message once a turn is added", () => {
    const stray = Context.decode({ maxTurns: 10, history: [{ role: "assistant", content: "stray" }] })
    expect(contents(stray.addUser("q").history)).toEqual(["user:q"])
    const budgeted = Context.decode({
      maxTurns: 10,
      maxTokens: 100,
      history: [{ role: "assistant", content: "stray" }]
    })
    expect(contents(budgeted.addUser("q").history)).toEqual(["user:q"])
  })

  it("encodes only the limits it was given, and names its schema in a decode failure", () => {
    expect(Context.make().encode()).toStrictEqual({ maxTurns: 10, history: [] })
    expect(() => Context.decode({ history: [] })).toThrow("effect-llm/ConversationContext")
  })
})
