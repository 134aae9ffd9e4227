/**
 * The tool-call assembly shared by the Chat Completions and Messages codecs
 * (src/internal/toolCalls.ts), pinned at its edges (issue 13, mutation
 * testing): strict argument parsing and its messages, the index range, the
 * finish reason without calls, and the streamed-call buffer's bookkeeping
 * (wire ids, late names, the next free index, the events it emits). A pure
 * module: tested directly, the provider behaviour over loopback lives in
 * toolCalls.test.ts and tools.test.ts.
 */
import { describe, expect, it } from "@effect/vitest"
import { LlmResponseError } from "../src/errors.js"
import {
  badIndex,
  maxToolCalls,
  parseArguments,
  ToolCallBuffer,
  toToolCall,
  withoutCalls
} from "../src/internal/toolCalls.js"
import { ToolCall } from "../src/Message.js"
import type { StreamEvent } from "../src/Stream.js"

const context = { provider: "local", model: "m", secrets: ["sk-secret-key"] }
const verbatim = (text: string) => `<${text}>`

describe("parseArguments", () => {
  it("reads no arguments (absent, null, empty or blank) as {}", () => {
    expect(parseArguments(undefined, verbatim)).toEqual({})
    expect(parseArguments(null, verbatim)).toEqual({})
    expect(parseArguments("", verbatim)).toEqual({})
    expect(parseArguments("  \n\t", verbatim)).toEqual({})
  })

  it("keeps a JSON object, given as text or already parsed", () => {
    expect(parseArguments(" {\"city\":\"Paris\"} ", verbatim)).toEqual({ city: "Paris" })
    const parsed = { city: "Paris" }
    expect(parseArguments(parsed, verbatim)).toBe(parsed)
  })

  it("refuses an array, a scalar, null and invalid JSON, quoting the text through the excerpt", () => {
    expect(parseArguments([1], verbatim)).toBe("the arguments are an array, not an object")
    expect(parseArguments("{\"a\":", verbatim)).toBe("the arguments are not valid JSON: <{\"a\":>")
    expect(parseArguments("5", verbatim)).toBe("the arguments are not a JSON object: <5>")
    expect(parseArguments("\"s\"", verbatim)).toBe("the arguments are not a JSON object: <\"s\">")
    expect(parseArguments("null", verbatim)).toBe("the arguments are not a JSON object: <null>")
    expect(parseArguments("[1,2]", verbatim)).toBe("the arguments are not a JSON object: <[1,2]>")
  })

  it("refuses arguments nested deeper than 64 levels, as text or parsed", () => {
    const deep = "{\"a\":".repeat(65) + "1" + "}".repeat(65)
    expect(parseArguments(deep, verbatim)).toBe("the arguments are nested deeper than 64 levels")
    expect(parseArguments(JSON.parse(deep), verbatim)).toBe("the arguments are nested deeper than 64 levels")
  })
})

describe("toToolCall", () => {
  it("builds the call from its parts", () => {
    const call = toToolCall(context, 0, "c1", "lookup", "{\"q\":1}")
    expect(call).toBeInstanceOf(ToolCall)
    expect({ ...(call as ToolCall) }).toEqual({ id: "c1", name: "lookup", arguments: { q: 1 } })
  })

  it("refuses a call without a name, and one with bad arguments quoted redacted and cut to 200 characters", () => {
    const unnamed = toToolCall(context, 2, "c2", "", "{}")
    expect(unnamed).toBeInstanceOf(LlmResponseError)
    expect((unnamed as LlmResponseError).message).toBe("local (m): tool call 2 (c2) has no function name")
    const bad = toToolCall(context, 0, "c1", "lookup", `{"key":"sk-secret-key","pad":"${"x".repeat(300)}`)
    expect(bad).toBeInstanceOf(LlmResponseError)
    const message = (bad as LlmResponseError).message
    const quoted = `{"key":"[redacted]","pad":"${"x".repeat(300)}`.slice(0, 200) + "…"
    expect(message).toBe(`local (m): tool call "lookup" (c1): the arguments are not valid JSON: ${quoted}`)
    expect(message).not.toContain("sk-secret-key")
  })
})

describe("badIndex", () => {
  it("accepts the integers from 0 to 1023 only", () => {
    expect(maxToolCalls).toBe(1024)
    expect(badIndex(context, 0)).toBeUndefined()
    expect(badIndex(context, 1023)).toBeUndefined()
    for (const index of [-1, 1024, 1.5, "0", undefined, Number.NaN]) {
      const error = badIndex(context, index)
      expect(error).toBeInstanceOf(LlmResponseError)
      expect(error?.message).toBe(
        `local (m): tool call index ${JSON.stringify(index)} is not an integer from 0 to 1023`
      )
    }
  })
})

describe("withoutCalls", () => {
  it("turns a tool_calls finish without calls into stop, and leaves every other reason", () => {
    expect(withoutCalls("tool_calls", false)).toBe("stop")
    expect(withoutCalls("tool_calls", true)).toBe("tool_calls")
    expect(withoutCalls("length", false)).toBe("length")
    expect(withoutCalls("stop", true)).toBe("stop")
  })
})

describe("ToolCallBuffer", () => {
  const make = () => ({ buffer: new ToolCallBuffer(context, "call_"), out: [] as Array<StreamEvent> })
  const tags = (out: ReadonlyArray<StreamEvent>) => out.map((e) => e._tag)

  it("emits a start per call and a delta per non-empty fragment, then the calls in index order", () => {
    const { buffer, out } = make()
    expect(buffer.start(1, "b", "second", out)).toBeUndefined()
    expect(buffer.start(0, "a", "first", out)).toBeUndefined()
    buffer.append(1, "{\"n\":", out)
    buffer.append(1, "", out)
    buffer.append(1, "2}", out)
    expect(out).toEqual([
      { _tag: "ToolCallStart", index: 1, id: "b", name: "second" },
      { _tag: "ToolCallStart", index: 0, id: "a", name: "first" },
      { _tag: "ToolCallDelta", index: 1, argumentsDelta: "{\"n\":" },
      { _tag: "ToolCallDelta", index: 1, argumentsDelta: "2}" }
    ])
    const calls = buffer.complete(out) as Array<ToolCall>
    expect(calls.map((c) => [c.id, c.name, c.arguments])).toEqual([["a", "first", {}], ["b", "second", { n: 2 }]])
    expect(tags(out.slice(4))).toEqual(["ToolCall", "ToolCall"])
    expect(out[4]).toMatchObject({ index: 0, toolCall: calls[0] })
  })

  it("refuses a bad index without opening a slot", () => {
    const { buffer, out } = make()
    expect(buffer.start(-1, "a", "t", out)?.message).toContain("tool call index -1")
    expect(buffer.has(-1)).toBe(false)
    expect(buffer.nextIndex).toBe(0)
    expect(out).toEqual([])
  })

  it("keeps the next free index one past the highest slot opened", () => {
    const { buffer, out } = make()
    expect(buffer.nextIndex).toBe(0)
    buffer.start(5, "a", "t", out)
    expect(buffer.nextIndex).toBe(6)
    buffer.start(2, "b", "t", out)
    expect(buffer.nextIndex).toBe(6)
    expect(buffer.has(2) && buffer.has(5) && !buffer.has(3)).toBe(true)
  })

  it("finds the latest slot of a wire id, never one of a call without an id", () => {
    const { buffer, out } = make()
    expect(buffer.indexOfId("a")).toBe(-1)
    buffer.start(0, "a", "t", out)
    buffer.start(1, "", "t", out)
    buffer.start(2, "a", "t", out)
    expect(buffer.indexOfId("a")).toBe(2)
    expect(buffer.indexOfId("")).toBe(-1)
    expect(buffer.indexOfId("b")).toBe(-1)
    // the ids reported are unique: the second "a" is a_2, the call without one call_1
    expect(out.map((e) => e._tag === "ToolCallStart" ? e.id : "")).toEqual(["a", "call_1", "a_2"])
  })

  it("takes a late name only for a slot opened without one", () => {
    const { buffer, out } = make()
    buffer.start(0, "a", "", out)
    expect(buffer.isNamed(0)).toBe(false)
    expect(buffer.isNamed(9)).toBe(false)
    buffer.rename(0, "late")
    expect(buffer.isNamed(0)).toBe(true)
    buffer.rename(0, "later")
    buffer.rename(9, "nowhere")
    expect(buffer.has(9)).toBe(false)
    expect((buffer.complete(out) as Array<ToolCall>).map((c) => c.name)).toEqual(["late"])
  })

  it("does not attribute a fragment for a slot never opened to any call", () => {
    const { buffer, out } = make()
    buffer.start(0, "a", "t", out)
    buffer.append(3, "{\"x\":1}", out)
    expect((buffer.complete(out) as Array<ToolCall>).map((c) => c.arguments)).toEqual([{}])
  })

  it("fails the reply on the first invalid call, in index order", () => {
    const { buffer, out } = make()
    buffer.start(0, "a", "", out)
    buffer.start(1, "b", "t", out)
    buffer.append(1, "{", out)
    const error = buffer.complete(out)
    expect(error).toBeInstanceOf(LlmResponseError)
    expect((error as LlmResponseError).message).toBe("local (m): tool call 0 (a) has no function name")
  })
})
