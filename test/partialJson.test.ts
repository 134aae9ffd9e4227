/**
 * The tolerant incremental JSON parser behind `Llm.streamObject`: fed any
 * JSON text cut anywhere, its snapshots are a monotone sequence (each one
 * extends the one before) ending in what `JSON.parse` gives for the whole
 * text; an array's complete elements are reported once each, in order;
 * invalid text stops it without throwing.
 */
import { describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import { PartialJson } from "../src/internal/partialJson.js"

/** Whether `next` extends `previous`: strings grow, arrays and objects keep what they had (extended), scalars stay. */
const extendsValue = (previous: unknown, next: unknown): boolean => {
  if (previous === undefined) return true
  if (typeof previous === "string") return typeof next === "string" && next.startsWith(previous)
  if (Array.isArray(previous)) {
    if (!Array.isArray(next) || next.length < previous.length) return false
    return previous.every((item, i) =>
      // only the last element may still grow
      i < previous.length - 1 ? deepEqual(item, next[i]) || extendsValue(item, next[i]) : extendsValue(item, next[i])
    )
  }
  if (typeof previous === "object" && previous !== null) {
    if (typeof next !== "object" || next === null || Array.isArray(next)) return false
    return Object.entries(previous).every(([key, value]) =>
      Object.hasOwn(next, key) && extendsValue(value, (next as Record<string, unknown>)[key])
    )
  }
  return Object.is(previous, next) || previous === next
}

const deepEqual = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b)

/** `text` cut at the given points (sorted, deduplicated, inside the text). */
const cutAt = (text: string, points: ReadonlyArray<number>): Array<string> => {
  const at = [...new Set(points.map((p) => p % (text.length + 1)))].sort((a, b) => a - b)
  const out: Array<string> = []
  let start = 0
  for (const point of at) {
    out.push(text.slice(start, point))
    start = point
  }
  out.push(text.slice(start))
  return out
}

/** Every snapshot after each piece, and the parser. */
const feedAll = (pieces: ReadonlyArray<string>, elementsAt?: ReadonlyArray<string>) => {
  const parser = new PartialJson(elementsAt)
  const snapshots: Array<unknown> = []
  const elements: Array<unknown> = []
  for (const piece of pieces) {
    parser.feed(piece)
    snapshots.push(parser.snapshot())
    for (const element of parser.takeElements()) elements.push(element)
  }
  parser.end()
  snapshots.push(parser.snapshot())
  for (const element of parser.takeElements()) elements.push(element)
  return { parser, snapshots, elements }
}

/** JSON text of a value: compact, pretty, or with every non-ASCII character escaped as `\uXXXX`. */
const render = (value: unknown, style: 0 | 1 | 2): string => {
  const compact = JSON.stringify(value)
  if (style === 1) return JSON.stringify(value, null, 2)
  if (style === 2) return compact.replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`)
  return compact
}

const jsonValue = fc.jsonValue({ maxDepth: 4 })

describe("PartialJson", () => {
  it("snapshots are monotone and end in JSON.parse's value, however the text is cut (property)", () => {
    fc.assert(
      fc.property(
        jsonValue,
        fc.constantFrom(0 as const, 1 as const, 2 as const),
        fc.array(fc.nat(), { maxLength: 40 }),
        (value, style, points) => {
          const text = render(value, style)
          const { parser, snapshots } = feedAll(cutAt(text, points))
          expect(parser.failed).toBe(false)
          expect(parser.complete).toBe(true)
          for (let i = 1; i < snapshots.length; i++) {
            if (!extendsValue(snapshots[i - 1], snapshots[i])) {
              throw new Error(
                `snapshot ${i} does not extend ${JSON.stringify(snapshots[i - 1])}: ${
                  JSON.stringify(snapshots[i])
                } (text ${text})`
              )
            }
          }
          expect(snapshots.at(-1)).toStrictEqual(JSON.parse(text))
        }
      ),
      { numRuns: 400 }
    )
  })

  it("one character at a time shows strings as they grow, numbers and literals only once complete", () => {
    const text = "{\"name\":\"Jo\\u00e9\",\"n\":-12.5e1,\"ok\":true,\"list\":[1,null,\"x\"]}"
    const { snapshots } = feedAll(text.split(""))
    const distinct = snapshots.filter((s, i) => i === 0 || s !== snapshots[i - 1])
    expect(distinct.map((s) => JSON.stringify(s))).toStrictEqual([
      "{}",
      "{\"name\":\"\"}",
      "{\"name\":\"J\"}",
      "{\"name\":\"Jo\"}",
      "{\"name\":\"Joé\"}",
      "{\"name\":\"Joé\",\"n\":-125}",
      "{\"name\":\"Joé\",\"n\":-125,\"ok\":true}",
      "{\"name\":\"Joé\",\"n\":-125,\"ok\":true,\"list\":[]}",
      "{\"name\":\"Joé\",\"n\":-125,\"ok\":true,\"list\":[1]}",
      "{\"name\":\"Joé\",\"n\":-125,\"ok\":true,\"list\":[1,null]}",
      "{\"name\":\"Joé\",\"n\":-125,\"ok\":true,\"list\":[1,null,\"\"]}",
      "{\"name\":\"Joé\",\"n\":-125,\"ok\":true,\"list\":[1,null,\"x\"]}"
    ])
  })

  it("gives the same snapshot (the same reference) while nothing visible changed", () => {
    const parser = new PartialJson()
    parser.feed("{\"a\":\"x\"")
    const first = parser.snapshot()
    parser.feed(",  \"b")
    expect(parser.snapshot()).toBe(first)
    parser.feed("\": 12")
    expect(parser.snapshot()).toBe(first)
    parser.feed(",")
    expect(parser.snapshot()).toStrictEqual({ a: "x", b: 12 })
  })

  it("holds back a lone high surrogate and a dangling escape", () => {
    const parser = new PartialJson()
    parser.feed("[\"a\\ud83d")
    expect(parser.snapshot()).toStrictEqual(["a"])
    parser.feed("\\ude00b\\")
    expect(parser.snapshot()).toStrictEqual(["a😀b"])
    parser.feed("n\"]")
    expect(parser.snapshot()).toStrictEqual(["a😀b\n"])
  })

  it("reports the target array's complete elements once each, in order (property)", () => {
    fc.assert(
      fc.property(fc.array(jsonValue, { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 30 }), (items, points) => {
        const text = JSON.stringify({ value: items, after: items })
        const { elements } = feedAll(cutAt(text, points), ["value"])
        // what the text holds (JSON has no -0)
        const parsed = JSON.parse(JSON.stringify(items))
        expect(elements).toStrictEqual(parsed)
        const root = feedAll(cutAt(JSON.stringify(items), points), [])
        expect(root.elements).toStrictEqual(parsed)
      }),
      { numRuns: 200 }
    )
  })

  it("stops at invalid JSON without throwing, keeping the last value", () => {
    for (
      const text of ["{\"a\" 1}", "[1,,2]", "{\"a\":tru e}", "{\"a\":01}", "[1}", "\"a\u0001\"", "{\"a\":\"\\x\"}"]
    ) {
      const { parser } = feedAll(text.split(""))
      expect(parser.failed, text).toBe(true)
      expect(parser.complete).toBe(false)
    }
    const parser = new PartialJson()
    parser.feed("{\"a\":[1,2")
    parser.feed(",]")
    expect(parser.failed).toBe(true)
    expect(parser.snapshot()).toStrictEqual({ a: [1, 2] })
  })

  it("skips a code fence before the value and ignores what follows it", () => {
    const { parser, snapshots } = feedAll(["```json\n{\"a\":", "1}\n```", "\nmore"])
    expect(parser.complete).toBe(true)
    expect(snapshots.at(-1)).toStrictEqual({ a: 1 })
  })

  it("a number at the root ends with the text; __proto__ is an own property, as JSON.parse makes it", () => {
    const parser = new PartialJson()
    parser.feed("4")
    parser.feed("2")
    expect(parser.snapshot()).toBeUndefined()
    parser.end()
    expect(parser.snapshot()).toBe(42)
    const proto = feedAll(["{\"__proto__\":{\"x\":1}}"]).snapshots.at(-1) as Record<string, unknown>
    expect(Object.getPrototypeOf(proto)).toBe(Object.prototype)
    expect(proto).toStrictEqual(JSON.parse("{\"__proto__\":{\"x\":1}}"))
  })
})
