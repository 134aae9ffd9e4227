import { describe, expect, it } from "@effect/vitest"
import { validateRequest } from "../src/internal/validate.js"
import * as Message from "../src/Message.js"

const call = { id: "c1", name: "lookup", arguments: {} }

describe("validateRequest refuses bad input before anything is sent", () => {
  it("accepts a valid tool round-trip", () => {
    expect(validateRequest([
      Message.user("q"),
      Message.assistant("", [call]),
      Message.tool({ toolCallId: "c1", name: "lookup", content: "r" }),
      Message.assistant("done")
    ], { temperature: 1, tools: [Message.toolDefinition({ name: "lookup" })], toolChoice: { name: "lookup" } }))
      .toBeUndefined()
  })

  it.each(
    [
      ["an empty message list", [], {}, /empty/],
      ["a temperature above 2", [Message.user("q")], { temperature: 2.5 }, /temperature/],
      ["a negative temperature", [Message.user("q")], { temperature: -1 }, /temperature/],
      ["a topP above 1", [Message.user("q")], { topP: 1.5 }, /topP/],
      ["a fractional maxTokens", [Message.user("q")], { maxTokens: 1.5 }, /maxTokens/],
      [
        "an invalid tool name",
        [Message.user("q")],
        { tools: [Message.toolDefinition({ name: "get weather" })] },
        /valid function name/
      ],
      ["a duplicate tool", [Message.user("q")], {
        tools: [Message.toolDefinition({ name: "a" }), Message.toolDefinition({ name: "a" })]
      }, /twice/],
      ["a toolChoice naming no tool", [Message.user("q")], { toolChoice: { name: "x" } }, /not among the tools/],
      [
        "a tool result without a call",
        [Message.user("q"), Message.tool({ toolCallId: "c9", name: "x", content: "r" })],
        {},
        /no preceding assistant tool call/
      ],
      [
        "a tool result answering a call two turns back",
        [
          Message.user("q"),
          Message.assistant("", [call]),
          Message.tool({ toolCallId: "c1", name: "lookup", content: "r" }),
          Message.user("again"),
          Message.tool({ toolCallId: "c1", name: "lookup", content: "r" })
        ],
        {},
        /no preceding assistant tool call/
      ],
      [
        "a tool call left without a result",
        [Message.user("q"), Message.assistant("", [call]), Message.user("?")],
        {},
        /have no tool result/
      ],
      [
        "a history ending on an unanswered tool call",
        [Message.user("q"), Message.assistant("", [call])],
        {},
        /have no tool result/
      ]
    ] as const
  )("refuses %s", (_, messages, options, pattern) => {
    expect(validateRequest(messages, options)).toMatch(pattern)
  })
})
