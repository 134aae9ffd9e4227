/**
 * An MCP tool result as the tool message the model reads: text as it is,
 * structured content as JSON, everything else described (never dropped).
 */
import { describe, expect, it } from "@effect/vitest"
import { renderResult } from "../src/internal/mcpContent.js"

describe("renderResult", () => {
  it("joins text blocks", () => {
    expect(renderResult({ content: [{ type: "text", text: "Echo: hi" }, { type: "text", text: "second" }] })).toBe(
      "Echo: hi\nsecond"
    )
  })

  it("sends structured content as JSON, without the text block that repeats it", () => {
    const weather = { temperature: 33, conditions: "Cloudy", humidity: 82 }
    expect(renderResult({
      content: [{ type: "text", text: JSON.stringify({ humidity: 82, conditions: "Cloudy", temperature: 33 }) }],
      structuredContent: weather
    })).toBe(JSON.stringify(weather))
    expect(renderResult({ content: [{ type: "text", text: "note" }], structuredContent: { a: 1 } })).toBe(
      "{\"a\":1}\nnote"
    )
    expect(renderResult({ structuredContent: { a: [1, { b: null }] } })).toBe("{\"a\":[1,{\"b\":null}]}")
  })

  it("describes images and audio with their type and size", () => {
    expect(renderResult({
      content: [
        { type: "image", data: "iVBORw0KGgo=", mimeType: "image/png" },
        { type: "audio", data: "AAAA", mimeType: "audio/wav" }
      ]
    })).toBe("[image: image/png, 8 bytes]\n[audio: audio/wav, 3 bytes]")
  })

  it("includes embedded text resources, describes binary ones and resource links", () => {
    expect(renderResult({
      content: [
        { type: "resource", resource: { uri: "demo://resource/1", mimeType: "text/plain", text: "Resource 1" } },
        { type: "resource", resource: { uri: "demo://resource/2", mimeType: "application/gzip", blob: "H4sIAAAA" } },
        {
          type: "resource_link",
          uri: "demo://resource/3",
          name: "Resource 3",
          mimeType: "text/plain",
          description: "a text resource"
        },
        { type: "resource_link", uri: "demo://resource/4", name: "Resource 4" }
      ]
    })).toBe(
      [
        "[resource demo://resource/1 (text/plain)]",
        "Resource 1",
        "[resource demo://resource/2 (application/gzip), 6 bytes]",
        "[resource link: Resource 3 <demo://resource/3> (text/plain): a text resource]",
        "[resource link: Resource 4 <demo://resource/4>]"
      ].join("\n")
    )
  })

  it("names a block of a kind it does not know instead of dropping it", () => {
    expect(renderResult({ content: [{ type: "hologram", data: "x" }] })).toBe("[hologram content]")
  })

  it("renders nothing for an empty result", () => {
    expect(renderResult({ content: [] })).toBe("")
    expect(renderResult({})).toBe("")
  })
})
